//! Large sample buffers for the 8-bit kernels' outputs.
//!
//! A fresh 4096² RGB output is 48 MiB: as 4 KiB pages that is 12,288 page faults, each zeroing
//! a page and charging it to the process, which cost these kernels 10–15% of a render here
//! (measured with `perf`: `clear_page_erms`, `exc_page_fault`). On Linux, where transparent huge
//! pages are commonly `madvise`-only, the buffer is advised for 2 MiB pages before it is first
//! written: 24 faults instead. Advice only: contents and behaviour are unchanged where it is
//! ignored.

/// Buffers smaller than this are left to the allocator as they come.
const ADVISE_MIN_BYTES: usize = 8 << 20;

/// `len` zero bytes, advised for huge pages where that helps (see the module header).
pub fn zeroed_u8(len: usize) -> Vec<u8> {
    let buf = vec![0u8; len];
    if len >= ADVISE_MIN_BYTES {
        advise_huge_pages(&buf);
    }
    buf
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buf: &[u8]) {
    const HUGE_PAGE: usize = 2 << 20;
    let start = (buf.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
    let end = (buf.as_ptr() as usize + buf.len()) / HUGE_PAGE * HUGE_PAGE;
    if end > start {
        // SAFETY: `start..end` lies inside `buf`'s allocation and is page-aligned; the advice
        // changes how its pages are backed, never their contents. Its result is ignored: a
        // kernel without THP just keeps 4 KiB pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buf: &[u8]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zero_and_writable_at_every_size() {
        for len in [0, 1, 4095, ADVISE_MIN_BYTES - 1, ADVISE_MIN_BYTES + 12_345] {
            let mut buf = zeroed_u8(len);
            assert_eq!(buf.len(), len);
            assert!(buf.iter().all(|&b| b == 0));
            buf.iter_mut().for_each(|b| *b = 7);
            assert!(buf.iter().all(|&b| b == 7));
        }
    }
}
