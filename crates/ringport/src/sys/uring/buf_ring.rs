//! The provided-buffer ring: a worker's pool of receive buffers that the kernel picks from
//! when data arrives, so no buffer is tied to a connection that is idle.

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// A buffer the kernel filled, claimed from a completion. Not `Clone`: it is given back
/// exactly once with [`BufRing::recycle`].
#[derive(Debug)]
pub(crate) struct BufId {
    bid: u16,
    len: usize,
}

/// A registered ring of `count` buffers of `size` bytes.
pub(crate) struct BufRing {
    /// Page-aligned array of `count` ring entries, shared with the kernel.
    entries: *mut BufRingEntry,
    entries_bytes: usize,
    /// The buffers themselves, `count * size` bytes.
    memory: Box<[u8]>,
    size: usize,
    count: u16,
    /// Our copy of the tail we publish to the kernel.
    tail: u16,
    /// Buffers handed out and not yet recycled (guards against double recycle).
    lent: Vec<bool>,
    bgid: u16,
    /// The kernel may still use the ring and its buffers (dropped without a clean
    /// shutdown): leave both allocated.
    leaked: bool,
}

impl BufRing {
    /// Allocate and register a ring with group id `bgid` on `ring`.
    pub(crate) fn new(ring: &IoUring, bgid: u16, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        let entries_bytes = count as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; no pointer of ours is passed in. The
        // result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut this = BufRing {
            entries: ptr.cast(),
            entries_bytes,
            memory: vec![0u8; count as usize * size as usize].into_boxed_slice(),
            size: size as usize,
            count,
            tail: 0,
            lent: vec![false; count as usize],
            bgid,
            leaked: false,
        };
        // SAFETY: the entries mapping lives as long as `this`, and `this` unregisters the
        // group in its Drop before unmapping (see Drop); the kernel reads entries only.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(this.entries as u64, count, bgid, 0)?;
        }
        for bid in 0..count {
            this.push_entry(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The buffer group id to name in receive operations.
    pub(crate) fn group(&self) -> u16 {
        self.bgid
    }

    /// Claim the buffer a completion carries (`flags` holds its id, `len` its bytes).
    pub(crate) fn claim(&mut self, flags: u32, len: usize) -> Option<BufId> {
        let bid = io_uring::cqueue::buffer_select(flags)?;
        let slot = self.lent.get_mut(bid as usize)?;
        if *slot || len > self.size {
            return None;
        }
        *slot = true;
        Some(BufId { bid, len })
    }

    /// The received bytes of a claimed buffer.
    pub(crate) fn bytes(&self, id: &BufId) -> &[u8] {
        let start = id.bid as usize * self.size;
        &self.memory[start..start + id.len]
    }

    /// Give a claimed buffer back to the kernel.
    pub(crate) fn recycle(&mut self, id: BufId) {
        self.lent[id.bid as usize] = false;
        self.push_entry(id.bid);
        self.publish();
    }

    fn push_entry(&mut self, bid: u16) {
        let mask = self.count - 1;
        let idx = (self.tail & mask) as usize;
        let addr = self.memory.as_ptr() as u64 + bid as u64 * self.size as u64;
        // SAFETY: idx < count, inside the mapping; the kernel only reads entries at or
        // past its head, and the entry at our tail is not yet published to it.
        let entry = unsafe { &mut *self.entries.add(idx) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved field, inside the
        // mapping; it is only written by us and read by the kernel, so an atomic store
        // with release ordering publishes the entries written before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Keep the ring mapping and the buffers allocated for good: receives may still be
    /// armed when a worker is abandoned, and the kernel's teardown of the ring is
    /// asynchronous, so it may still write into them after the ring fd is closed.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
        std::mem::forget(std::mem::take(&mut self.memory));
    }

    /// Unregister from `ring` (done by the worker before the ring is dropped).
    pub(crate) fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.bgid);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: the mapping was created in `new` with this length; the group was
        // unregistered (or its ring dropped, which releases the registration) before,
        // and no receive is armed (a clean shutdown closed every connection first).
        unsafe {
            libc::munmap(self.entries.cast(), self.entries_bytes);
        }
    }
}
