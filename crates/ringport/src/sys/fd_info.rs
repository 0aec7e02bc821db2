//! What a descriptor refers to: its open file's identity and type (fstat and the access
//! mode from `F_GETFL`), so a watch can refuse a file watched already (through a dup, or
//! the other handle of one socket) and a file that cannot be polled.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The file behind a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
    /// `O_RDONLY`, `O_WRONLY` or `O_RDWR`: the two ends of a pipe share an inode and
    /// differ here.
    access: i32,
}

/// What kind of file it is, as far as polling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A regular file: always "ready" to io_uring, refused by epoll.
    Regular,
    Directory,
    /// A character or block device whose driver has no readiness (`/dev/null`, a disk):
    /// always "ready" to io_uring, refused by epoll.
    UnpollableDevice,
    /// Sockets, pipes, FIFOs, pollable devices (terminals), eventfds, timerfds, ...
    Pollable,
}

/// The identity and kind of the file `fd` refers to.
pub(crate) fn identify(fd: BorrowedFd<'_>) -> io::Result<(FileIdentity, FileKind)> {
    let raw = fd.as_raw_fd();
    // SAFETY: `stat` is plain data for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is open for the borrow's lifetime; `st` is a live, writable local.
    if unsafe { libc::fstat(raw, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_GETFL reads the descriptor's status flags; it takes no pointer.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::Regular,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFCHR | libc::S_IFBLK if !epoll_takes(raw)? => FileKind::UnpollableDevice,
        _ => FileKind::Pollable,
    };
    let id = FileIdentity {
        dev: st.st_dev,
        ino: st.st_ino,
        access: flags & libc::O_ACCMODE,
    };
    Ok((id, kind))
}

/// Does epoll accept `fd` (its driver has readiness)? Asked of devices only, with a
/// throw-away epoll set.
fn epoll_takes(fd: i32) -> io::Result<bool> {
    // SAFETY: epoll_create1 takes no pointers; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ep` is a fresh descriptor owned by nothing else; it closes on drop.
    let ep = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: both descriptors are open for the call; `ev` is a live local.
    let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if rc == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    #[test]
    fn a_dup_is_the_same_file_and_a_socket_pairs_ends_are_not() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let dup = a.try_clone().unwrap();
        let (ia, ka) = identify(a.as_fd()).unwrap();
        assert_eq!(ka, FileKind::Pollable);
        assert_eq!(identify(dup.as_fd()).unwrap().0, ia);
        assert_ne!(identify(b.as_fd()).unwrap().0, ia);
    }

    #[test]
    fn the_ends_of_a_pipe_differ_and_files_are_told_apart() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the live array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are fresh and owned by nothing else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        assert_ne!(
            identify(r.as_fd()).unwrap().0,
            identify(w.as_fd()).unwrap().0
        );
        let file =
            std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml").unwrap();
        assert_eq!(identify(file.as_fd()).unwrap().1, FileKind::Regular);
        let dir = std::fs::File::open(env!("CARGO_MANIFEST_DIR")).unwrap();
        assert_eq!(identify(dir.as_fd()).unwrap().1, FileKind::Directory);
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(
            identify(null.as_fd()).unwrap().1,
            FileKind::UnpollableDevice
        );
    }
}
