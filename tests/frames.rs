//! The replication frame decoder fed what a buggy or hostile peer might send: random
//! bytes, and well-formed entry headers that claim lengths the file does not hold. It
//! never panics and never allocates more than a bound that follows the input's size
//! (measured with a counting allocator), and it rejects every claim past the end. The
//! peer protocol's message framer, and a follower reading a stream's batches, take
//! random chunks the same way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

/// The system allocator, remembering the largest single allocation asked for.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; it only records sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// One measurement at a time (the tests run on several threads).
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Decodes `bytes` and returns the largest single allocation made meanwhile.
fn decode(bytes: &[u8]) -> (Result<usize, String>, usize) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST.store(0, Ordering::Relaxed);
    let decoded = coresh::replication::increment::decode(bytes, bytes.len() as u64);
    let largest = LARGEST.load(Ordering::Relaxed);
    (decoded.map(|e| e.len()).map_err(|e| e.to_string()), largest)
}

/// What one decode may allocate at most: buffers of a few KiB, and what the input
/// holds, a few times over for its entries.
fn bound(input: usize) -> usize {
    64 * 1024 + 8 * input
}

/// An entry header line claiming `len` bytes of changeset.
fn header(seq: i64, len: u64) -> Vec<u8> {
    let mut line =
        format!(r#"{{"seq":{seq},"at":"2026-12-01T00:00:00Z","rows":1,"checksum":"00","origin":"x","len":{len}}}"#)
            .into_bytes();
    line.push(b'\n');
    line
}

proptest! {
    #[test]
    fn random_bytes_never_panic_nor_allocate_past_the_bound(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (_, largest) = decode(&bytes);
        prop_assert!(largest <= bound(bytes.len()), "allocated {largest} for {} bytes", bytes.len());
    }

    #[test]
    fn claimed_lengths_past_the_end_are_refused(
        claims in proptest::collection::vec((0u64..u64::MAX, 0usize..64), 1..8),
    ) {
        let mut bytes = Vec::new();
        let mut honest = true;
        for (seq, (claim, held)) in claims.iter().enumerate() {
            bytes.extend(header(seq as i64 + 1, *claim));
            bytes.extend(std::iter::repeat_n(0xa5, *held));
            honest &= *claim == *held as u64;
        }
        let (decoded, largest) = decode(&bytes);
        prop_assert!(largest <= bound(bytes.len()), "allocated {largest} for {} bytes", bytes.len());
        if !honest {
            // A claim that is not what follows either runs past the end or misreads the
            // next header: either way the file is refused.
            prop_assert!(decoded.is_err(), "{decoded:?}");
        }
    }

    #[test]
    fn the_message_framer_takes_random_chunks_without_panic_or_unbounded_buffers(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 0..16),
    ) {
        use coresh::peer::message::Request;
        let total: usize = chunks.iter().map(Vec::len).sum();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        LARGEST.store(0, Ordering::Relaxed);
        runtime.block_on(async {
            let mut framed = coresh::peer::Framed::new(Chunks(chunks.into()), "hostile");
            while framed.recv_or_end::<Request>().await.is_ok_and(|r| r.is_some()) {}
        });
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest <= bound(total), "allocated {largest} for {total} bytes");
    }
}

proptest! {
    #[test]
    fn a_follower_reads_hostile_batches_without_panic_or_unbounded_buffers(
        claims in proptest::collection::vec((0u64..u64::MAX, 0usize..64), 1..8),
        announced in 0u64..u64::MAX,
    ) {
        use coresh::peer::message::Feed;
        let mut bytes = coresh::peer::frame::encode(&Feed::Batch { entries: claims.len() as u32, bytes: announced });
        for (seq, (claim, held)) in claims.iter().enumerate() {
            bytes.extend(header(seq as i64 + 1, *claim));
            bytes.extend(std::iter::repeat_n(0xa5, *held));
        }
        let honest = claims.iter().all(|(c, h)| *c == *h as u64)
            && announced == claims.iter().map(|(c, _)| *c).sum::<u64>();
        let total = bytes.len();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        LARGEST.store(0, Ordering::Relaxed);
        let read = runtime.block_on(async {
            let mut framed = coresh::peer::Framed::new(Chunks(vec![bytes].into()), "hostile");
            coresh::replication::follow::next(&mut framed).await
        });
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest <= bound(total), "allocated {largest} for {total} bytes");
        if !honest {
            prop_assert!(read.is_err(), "{read:?}");
        }
    }
}

/// A link that hands over the chunks a hostile peer sent, then ends.
struct Chunks(std::collections::VecDeque<Vec<u8>>);

impl coresh::peer::Link for Chunks {
    async fn send(&mut self, _: Vec<u8>) -> Result<(), coresh::peer::PeerError> {
        Ok(())
    }
    async fn recv(&mut self) -> Result<Option<Vec<u8>>, coresh::peer::PeerError> {
        Ok(self.0.pop_front())
    }
    async fn close(self) {}
}

#[test]
fn a_header_claiming_a_terabyte_is_refused_without_allocating_it() {
    let mut bytes = header(1, 1 << 40);
    bytes.extend([0u8; 16]);
    let (decoded, largest) = decode(&bytes);
    assert!(decoded.unwrap_err().contains("claims 1099511627776 bytes"));
    assert!(largest < 1 << 20, "allocated {largest}");
    let honest = [header(1, 3), vec![1, 2, 3], header(2, 0)].concat();
    assert_eq!(decode(&honest).0, Ok(2));
}
