//! `--name value` options, nothing more.

use std::collections::HashMap;

pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse(v: Vec<String>) -> Args {
        let mut map = HashMap::new();
        let mut it = v.into_iter();
        while let Some(k) = it.next() {
            if !k.starts_with("--") {
                eprintln!("unexpected argument {k:?}");
                std::process::exit(2);
            }
            let Some(val) = it.next() else {
                eprintln!("{k} needs a value");
                std::process::exit(2);
            };
            map.insert(k, val);
        }
        Args(map)
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| default.to_string())
    }

    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        match self.0.get(k) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("{k}: not a number: {v:?}");
                std::process::exit(2)
            }),
        }
    }

    pub fn u32(&self, k: &str, d: u32) -> u32 {
        self.num(k, d)
    }

    pub fn usize(&self, k: &str, d: usize) -> usize {
        self.num(k, d)
    }

    pub fn f64(&self, k: &str, d: f64) -> f64 {
        self.num(k, d)
    }
}
