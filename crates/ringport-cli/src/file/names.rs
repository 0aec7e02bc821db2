//! Names resolved strictly under the file server's root.
//!
//! A name is checked before the file system is touched ([`check_name`]: not empty, no NUL,
//! not absolute, no empty, `.` or `..` component, at most [`MAX_NAME`] bytes and
//! [`MAX_COMPONENT`] per component), then resolved by the kernel with `openat2` on the
//! root's descriptor with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: a symlink may lead
//! elsewhere under the root, never out of it (an absolute symlink is refused as well).
//! What is opened for reading must be a regular file: it is first opened `O_PATH`
//! (which opens no device and blocks on no FIFO) and checked with `fstat`, then opened
//! for reading and checked again to be the same file. Uploads go to a fresh temporary
//! name (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the target's directory, renamed over the
//! target once complete; a [`TempUpload`] dropped before that removes its file.

use crate::file::protocol::{Code, Refusal};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest name, in bytes.
pub const MAX_NAME: usize = 4096;
/// Longest component of a name, in bytes.
pub const MAX_COMPONENT: usize = 255;

/// How the temporary names of uploads begin; no request may name one.
pub const TEMP_PREFIX: &str = ".ringport-upload.";

/// How every name is resolved under the root.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// Refuse a name that is not a plain relative path, before any system call.
pub fn check_name(name: &[u8]) -> Result<(), Refusal> {
    let shown = String::from_utf8_lossy(name);
    let bad = |why: &str| Err(Refusal::new(Code::BadName, why.to_string()));
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME {
        return Err(Refusal::new(
            Code::NameTooLong,
            format!("the name is {} bytes (at most {MAX_NAME})", name.len()),
        ));
    }
    if name.contains(&0) {
        return bad("the name has a NUL byte");
    }
    if name[0] == b'/' {
        return bad(&format!("{shown:?} is absolute"));
    }
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" => return bad(&format!("{shown:?} has an empty component")),
            b"." | b".." => return bad(&format!("{shown:?} has a . or .. component")),
            p if p.len() > MAX_COMPONENT => {
                return Err(Refusal::new(
                    Code::NameTooLong,
                    format!("a component is {} bytes (at most {MAX_COMPONENT})", p.len()),
                ))
            }
            _ => {}
        }
    }
    let last = name.rsplit(|&b| b == b'/').next().unwrap_or_default();
    if last.starts_with(TEMP_PREFIX.as_bytes()) {
        return bad(&format!(
            "{shown:?}: {TEMP_PREFIX}* names are uploads in progress"
        ));
    }
    Ok(())
}

/// The refusal for a failed resolution or open of `name`.
fn refusal(name: &[u8], e: Errno) -> Refusal {
    let shown = String::from_utf8_lossy(name);
    let (code, why) = match e {
        Errno::NOENT => (Code::NotFound, "no such file"),
        Errno::NOTDIR => (Code::NotFound, "a component is not a directory"),
        Errno::XDEV => (Code::OutsideRoot, "it leads outside the root"),
        Errno::LOOP => (Code::OutsideRoot, "a link that may not be followed"),
        Errno::ACCESS | Errno::PERM => (Code::Denied, "permission denied"),
        Errno::NAMETOOLONG => (Code::NameTooLong, "the name is too long"),
        Errno::ISDIR => (Code::NotRegular, "it is a directory"),
        Errno::NOSPC | Errno::DQUOT => (Code::DiskFull, "no space left"),
        _ => (Code::Io, ""),
    };
    let why = if why.is_empty() {
        std::io::Error::from(e).to_string()
    } else {
        why.to_string()
    };
    Refusal::new(code, format!("{shown:?}: {why}"))
}

/// What kind of thing a non-regular file is, for people.
fn kind_of(ft: FileType) -> &'static str {
    match ft {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Symlink => "a symbolic link",
        _ => "not a regular file",
    }
}

/// The file server's root directory, held open.
pub struct Root {
    dir: Arc<OwnedFd>,
}

/// Counts temporary names within this process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Root {
    /// Open `path` as the root, and check that this kernel has `openat2`.
    pub fn open(path: &Path) -> anyhow::Result<Root> {
        use anyhow::Context;
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening the root directory {}", path.display()))?;
        rustix::fs::openat2(
            &dir,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .context("openat2 with RESOLVE_BENEATH (Linux 5.6 or later is needed)")?;
        Ok(Root { dir: Arc::new(dir) })
    }

    /// Open `name` for reading: a regular file under the root; returns it and its size.
    pub fn open_for_read(&self, name: &[u8]) -> Result<(File, u64), Refusal> {
        check_name(name)?;
        let path = OsStr::from_bytes(name);
        let probe = rustix::fs::openat2(
            &*self.dir,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| refusal(name, e))?;
        let first = regular(name, File::from(probe))?;
        let fd = rustix::fs::openat2(
            &*self.dir,
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| refusal(name, e))?;
        let file = File::from(fd);
        let meta = regular(name, file.try_clone().map_err(io_refusal(name))?)?;
        if (meta.dev(), meta.ino()) != (first.dev(), first.ino()) {
            return Err(Refusal::new(
                Code::Io,
                format!(
                    "{:?} changed while it was opened",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        rustix::fs::fcntl_setfl(&file, OFlags::empty()).map_err(|e| refusal(name, e))?;
        Ok((file, meta.len()))
    }

    /// Make a temporary file in the directory `name` would go to, checking that the
    /// directory is under the root and that `name` is not something other than a
    /// regular file already.
    pub fn prepare_upload(&self, name: &[u8]) -> Result<(File, TempUpload), Refusal> {
        check_name(name)?;
        let (parent, last) = match name.iter().rposition(|&b| b == b'/') {
            Some(i) => (Some(&name[..i]), &name[i + 1..]),
            None => (None, name),
        };
        let dir = match parent {
            Some(p) => Arc::new(
                rustix::fs::openat2(
                    &*self.dir,
                    OsStr::from_bytes(p),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
                .map_err(|e| refusal(name, e))?,
            ),
            None => Arc::clone(&self.dir),
        };
        let target = OsStr::from_bytes(last);
        match rustix::fs::statat(&*dir, target, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft != FileType::RegularFile {
                    return Err(Refusal::new(
                        Code::NotRegular,
                        format!("{:?} is {}", String::from_utf8_lossy(name), kind_of(ft)),
                    ));
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(refusal(name, e)),
        }
        let temp = format!(
            "{TEMP_PREFIX}{}.{}.part",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let fd = rustix::fs::openat(
            &*dir,
            temp.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| refusal(name, e))?;
        let upload = TempUpload {
            dir,
            temp,
            target: last.to_vec(),
            done: false,
        };
        Ok((File::from(fd), upload))
    }
}

fn io_refusal(name: &[u8]) -> impl Fn(std::io::Error) -> Refusal + '_ {
    move |e| {
        let errno = e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error);
        refusal(name, errno)
    }
}

/// The metadata of `file` if it is a regular file.
fn regular(name: &[u8], file: File) -> Result<std::fs::Metadata, Refusal> {
    let meta = file.metadata().map_err(io_refusal(name))?;
    let ft = FileType::from_raw_mode(meta.mode());
    if ft != FileType::RegularFile {
        return Err(Refusal::new(
            Code::NotRegular,
            format!("{:?} is {}", String::from_utf8_lossy(name), kind_of(ft)),
        ));
    }
    Ok(meta)
}

/// An upload's temporary file: removed when dropped, unless [`TempUpload::commit`]
/// renamed it over its target.
pub struct TempUpload {
    dir: Arc<OwnedFd>,
    temp: String,
    target: Vec<u8>,
    done: bool,
}

impl TempUpload {
    /// Rename the temporary file over the target (in the same directory).
    pub fn commit(mut self) -> Result<(), Refusal> {
        rustix::fs::renameat(
            &*self.dir,
            self.temp.as_str(),
            &*self.dir,
            OsStr::from_bytes(&self.target),
        )
        .map_err(|e| refusal(&self.target, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = rustix::fs::unlinkat(&*self.dir, self.temp.as_str(), AtFlags::empty()) {
                tracing::warn!(temp = %self.temp, error = %e, "cannot remove an unfinished upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    fn code(r: Result<(File, u64), Refusal>) -> Code {
        r.map(|_| ()).unwrap_err().code
    }

    #[test]
    fn names_are_checked_before_the_file_system() {
        for ok in [&b"a"[..], b"a/b", b"a..b", b".hidden", b"a/...", b"x y"] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
        }
        for (bad, expected) in [
            (&b""[..], Code::BadName),
            (b"/etc/passwd", Code::BadName),
            (b"../x", Code::BadName),
            (b"a/../../x", Code::BadName),
            (b"a/./b", Code::BadName),
            (b"a//b", Code::BadName),
            (b"a/", Code::BadName),
            (b"..", Code::BadName),
            (b"a\0b", Code::BadName),
            (b"d/.ringport-upload.1.2.part", Code::BadName),
        ] {
            assert_eq!(check_name(bad).unwrap_err().code, expected, "{bad:?}");
        }
        assert_eq!(
            check_name(&vec![b'a'; MAX_NAME + 1]).unwrap_err().code,
            Code::NameTooLong
        );
        assert_eq!(
            check_name(&vec![b'a'; MAX_COMPONENT + 1]).unwrap_err().code,
            Code::NameTooLong
        );
        let mut deep = b"a/".repeat(MAX_NAME / 2 - 1);
        deep.push(b'a');
        assert_eq!(check_name(&deep), Ok(()));
    }

    #[test]
    fn only_regular_files_under_the_root_open() {
        let outside = tempfile::tempdir_in("/dev/shm").unwrap();
        let root_dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let r = root_dir.path();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/file"), b"hello").unwrap();
        symlink("sub/file", r.join("inside-link")).unwrap();
        symlink("../sub/file", r.join("sub/up-link")).unwrap();
        symlink(outside.path().join("secret"), r.join("abs-link")).unwrap();
        symlink("../../../../../../../../etc/passwd", r.join("rel-out")).unwrap();
        symlink(outside.path(), r.join("dir-out")).unwrap();
        symlink("/dev/null", r.join("null")).unwrap();
        symlink("/proc/self/fd/0", r.join("magic")).unwrap();
        let root = Root::open(r).unwrap();

        let (mut f, size) = root.open_for_read(b"sub/file").unwrap();
        assert_eq!(size, 5);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(root.open_for_read(b"inside-link").unwrap().1, 5);
        assert_eq!(root.open_for_read(b"sub/up-link").unwrap().1, 5);

        for (name, expected) in [
            (&b"abs-link"[..], Code::OutsideRoot),
            (b"rel-out", Code::OutsideRoot),
            (b"dir-out/secret", Code::OutsideRoot),
            (b"null", Code::OutsideRoot),
            (b"magic", Code::OutsideRoot),
            (b"sub", Code::NotRegular),
            (b"missing", Code::NotFound),
            (b"sub/file/x", Code::NotFound),
            (b"../x", Code::BadName),
        ] {
            assert_eq!(code(root.open_for_read(name)), expected, "{name:?}");
        }
    }

    #[test]
    fn uploads_go_to_a_temp_name_and_vanish_unless_committed() {
        let root_dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let r = root_dir.path();
        std::fs::create_dir(r.join("d")).unwrap();
        let root = Root::open(r).unwrap();
        let count = || std::fs::read_dir(r.join("d")).unwrap().count();

        let (mut f, up) = root.prepare_upload(b"d/new").unwrap();
        f.write_all(b"data").unwrap();
        assert_eq!(count(), 1);
        drop(up);
        assert_eq!(count(), 0, "a dropped upload leaves nothing");

        let (mut f, up) = root.prepare_upload(b"d/new").unwrap();
        f.write_all(b"data").unwrap();
        up.commit().unwrap();
        assert_eq!(std::fs::read(r.join("d/new")).unwrap(), b"data");
        assert_eq!(count(), 1);

        // Overwriting a regular file is fine; a directory or a symlink is not.
        assert!(root.prepare_upload(b"d/new").is_ok());
        symlink("/etc/passwd", r.join("d/link")).unwrap();
        let refused = |name: &[u8]| root.prepare_upload(name).map(|_| ()).unwrap_err().code;
        assert_eq!(refused(b"d/link"), Code::NotRegular);
        assert_eq!(refused(b"d"), Code::NotRegular);
        assert_eq!(refused(b"missing/x"), Code::NotFound);
        symlink("/tmp", r.join("out")).unwrap();
        assert_eq!(refused(b"out/x"), Code::OutsideRoot);
        assert_eq!(refused(b"/tmp/x"), Code::BadName);
    }
}
