//! `digest-bench`: what a digest of a whole file costs one thread, BLAKE3
//! against SHA-256, so the ringport file server's digest can be chosen on
//! figures.
//!
//! ```text
//! digest-bench [--file PATH] [--file-mib N] [--mem-mib N] [--rounds N] [--buf BYTES]
//! ```
//!
//! - file: PATH (default `/dev/shm/digest-bench.bin`, created with N MiB of
//!   pseudo-random bytes, default 1024, when missing or of another size) is
//!   read with `read(2)` into one buffer of BYTES (default 1 MiB) and each
//!   read fed to the hasher, as a server hashing a file it sends would;
//!   `read-only` is the same loop without a hasher (what the reads cost).
//! - mmap: the same file mapped (`mmap(2)`, read-only, private, no
//!   MAP_POPULATE: the page faults count) and hashed in BYTES slices, the way
//!   to hash a file without copying it out of the page cache.
//! - memory: a buffer of N MiB (default 256) hashed in BYTES slices: the
//!   hash alone.
//!
//! Hashers: `blake3` (the `blake3` crate's `Hasher::update`, one thread; it
//! picks its SIMD at run time: AVX-512, AVX2, SSE4.1 or portable), `sha256`
//! (the `sha2` crate; it uses the SHA-NI instructions when the CPU has them)
//! and `sha256-noshani` (the same digest through `sha2-asm`'s compression
//! function, the path `sha2` with its `asm` feature takes on a CPU without
//! SHA-NI; checked against `sha256`).
//!
//! Every round runs every case, in turn (so a drift of the machine hits all
//! alike). For each case: wall time, and CPU time of the process
//! (`getrusage`: user + system, so the file reads' kernel time counts), as
//! GB/s (10^9 bytes per wall second) and CPU seconds per GiB. Prints one
//! line per round and case, then a Markdown table of medians with the
//! ranges.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use sha2::Digest as _;

struct Opts {
    file: String,
    file_mib: u64,
    mem_mib: usize,
    rounds: usize,
    buf: usize,
}

/// One measured hash: wall and CPU seconds, and the digest (hex, shortened).
struct Sample {
    wall: f64,
    cpu: f64,
    digest: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Algo {
    None,
    Blake3,
    Sha256,
    Sha256NoShani,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::None => "read-only",
            Algo::Blake3 => "blake3",
            Algo::Sha256 => "sha256",
            Algo::Sha256NoShani => "sha256-noshani",
        }
    }
}

/// A running digest of one of the algorithms.
enum Hasher {
    None,
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
    Sha256NoShani(Sha256Asm),
}

impl Hasher {
    fn new(algo: Algo) -> Hasher {
        match algo {
            Algo::None => Hasher::None,
            Algo::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha256NoShani => Hasher::Sha256NoShani(Sha256Asm::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::None => {}
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha256NoShani(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::None => String::from("-"),
            Hasher::Blake3(h) => hex(h.finalize().as_bytes()),
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha256NoShani(h) => hex(&h.finish()),
        }
    }
}

/// SHA-256 over `sha2_asm::compress256` (the assembly of the `asm` feature,
/// without SHA-NI), with the standard padding.
struct Sha256Asm {
    state: [u32; 8],
    block: [u8; 64],
    fill: usize,
    len: u64,
}

impl Sha256Asm {
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    fn new() -> Sha256Asm {
        Sha256Asm {
            state: Self::H0,
            block: [0; 64],
            fill: 0,
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.fill > 0 {
            let take = (64 - self.fill).min(data.len());
            self.block[self.fill..self.fill + take].copy_from_slice(&data[..take]);
            self.fill += take;
            data = &data[take..];
            if self.fill < 64 {
                return;
            }
            sha2_asm::compress256(&mut self.state, &[self.block]);
            self.fill = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        sha2_asm::compress256(&mut self.state, blocks);
        self.block[..rest.len()].copy_from_slice(rest);
        self.fill = rest.len();
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let fill_after = (self.fill + 1) % 64;
        let zeros = if fill_after <= 56 {
            56 - fill_after
        } else {
            120 - fill_after
        };
        pad.resize(1 + zeros, 0);
        pad.extend_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad);
        debug_assert_eq!(self.fill, 0);
        self.len = len;
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// User + system CPU seconds of the process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: rusage is a plain C struct of integers, for which all zero
    // bytes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, exclusively borrowed rusage for getrusage to
    // fill; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn measure(f: impl FnOnce() -> io::Result<String>) -> io::Result<Sample> {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let digest = f()?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    Ok(Sample { wall, cpu, digest })
}

fn hash_file(path: &str, algo: Algo, buf: &mut [u8]) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(algo);
    let mut total = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finish(), total))
}

fn hash_mmap(path: &str, algo: Algo, step: usize) -> io::Result<String> {
    use std::os::fd::AsRawFd;
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(hash_mem(&[], algo, step));
    }
    // SAFETY: a fresh read-only private mapping of `len` bytes of an open
    // file; the kernel picks the address. Checked for MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is `len` readable bytes that live until the munmap
    // below, after the last use of the slice; nothing here writes the file
    // (a benchmark file nobody truncates while it runs).
    let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    let digest = hash_mem(data, algo, step);
    // SAFETY: unmaps exactly the mapping made above; `data` is not used again.
    unsafe { libc::munmap(ptr, len) };
    Ok(digest)
}

fn hash_mem(data: &[u8], algo: Algo, step: usize) -> String {
    let mut hasher = Hasher::new(algo);
    for chunk in data.chunks(step) {
        hasher.update(chunk);
    }
    hasher.finish()
}

/// Deterministic pseudo-random bytes (xorshift64*), cheap to make.
fn fill_random(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let v = seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn ensure_file(path: &str, mib: u64) -> io::Result<()> {
    let want = mib << 20;
    if std::fs::metadata(path)
        .map(|m| m.len() == want)
        .unwrap_or(false)
    {
        return Ok(());
    }
    eprintln!("writing {mib} MiB of pseudo-random bytes to {path}");
    let mut file = File::create(path)?;
    let mut block = vec![0u8; 1 << 20];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..mib {
        fill_random(&mut block, &mut seed);
        file.write_all(&block)?;
    }
    Ok(())
}

fn parse() -> Opts {
    let mut o = Opts {
        file: "/dev/shm/digest-bench.bin".into(),
        file_mib: 1024,
        mem_mib: 256,
        rounds: 5,
        buf: 1 << 20,
    };
    let usage =
        "usage: digest-bench [--file PATH] [--file-mib N] [--mem-mib N] [--rounds N] [--buf BYTES]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| die(usage));
        let num = |v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| die(usage))
        };
        match flag.as_str() {
            "--file" => o.file = v.clone(),
            "--file-mib" => o.file_mib = num(v),
            "--mem-mib" => o.mem_mib = num(v) as usize,
            "--rounds" => o.rounds = num(v) as usize,
            "--buf" => o.buf = num(v) as usize,
            _ => die(usage),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() -> io::Result<()> {
    let o = parse();
    ensure_file(&o.file, o.file_mib)?;
    let mut mem = vec![0u8; o.mem_mib << 20];
    fill_random(&mut mem, &mut 0x1234_5678_9abc_def1u64);
    let mut buf = vec![0u8; o.buf];

    // Cases: (source, algorithm).
    let algos = [Algo::Blake3, Algo::Sha256, Algo::Sha256NoShani];
    let mut cases: Vec<(&str, Algo)> = vec![("file", Algo::None)];
    cases.extend(algos.iter().map(|&a| ("file", a)));
    cases.extend([("mmap", Algo::Blake3), ("mmap", Algo::Sha256)]);
    cases.extend(algos.iter().map(|&a| ("memory", a)));

    // Warm-up: one pass of the file (page cache, CPU clock) and the check
    // that both SHA-256 paths agree.
    let (_, file_bytes) = hash_file(&o.file, Algo::None, &mut buf)?;
    let probe = &mem[..(1 << 20) + 13];
    assert_eq!(
        hash_mem(probe, Algo::Sha256, 4093),
        hash_mem(probe, Algo::Sha256NoShani, 1000)
    );
    assert_eq!(
        hash_mem(b"abc", Algo::Sha256NoShani, 1),
        hash_mem(b"abc", Algo::Sha256, 1)
    );

    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 1..=o.rounds {
        for (i, &(source, algo)) in cases.iter().enumerate() {
            let s = if source == "file" {
                measure(|| hash_file(&o.file, algo, &mut buf).map(|(d, _)| d))?
            } else if source == "mmap" {
                measure(|| hash_mmap(&o.file, algo, o.buf))?
            } else {
                measure(|| Ok(hash_mem(&mem, algo, o.buf)))?
            };
            let bytes = if source == "file" {
                file_bytes
            } else {
                mem.len() as u64
            };
            println!(
                "round {round} {source:6} {:15} {:7.3} GB/s {:6.3} CPU s/GiB  {}",
                algo.name(),
                bytes as f64 / s.wall / 1e9,
                s.cpu / (bytes as f64 / (1u64 << 30) as f64),
                &s.digest[..s.digest.len().min(16)]
            );
            samples[i].push(s);
        }
    }

    println!();
    println!(
        "| source | digest | GB/s (median) | range | CPU s/GiB (median) | range | digest (first 16 hex) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- |");
    for (i, &(source, algo)) in cases.iter().enumerate() {
        let bytes = if source == "file" {
            file_bytes
        } else {
            mem.len() as u64
        } as f64;
        let mut gbs: Vec<f64> = samples[i].iter().map(|s| bytes / s.wall / 1e9).collect();
        let mut cpu: Vec<f64> = samples[i]
            .iter()
            .map(|s| s.cpu / (bytes / (1u64 << 30) as f64))
            .collect();
        let (g, c) = (median(&mut gbs), median(&mut cpu));
        let src = if source == "file" {
            format!("{} MiB file, {} B reads", file_bytes >> 20, o.buf)
        } else if source == "mmap" {
            format!("{} MiB file, mmap", file_bytes >> 20)
        } else {
            format!("{} MiB in memory", o.mem_mib)
        };
        let d = &samples[i][0].digest;
        println!(
            "| {src} | {} | {g:.3} | {:.3}–{:.3} | {c:.3} | {:.3}–{:.3} | {} |",
            algo.name(),
            gbs[0],
            gbs[gbs.len() - 1],
            cpu[0],
            cpu[cpu.len() - 1],
            &d[..d.len().min(16)]
        );
    }
    Ok(())
}
