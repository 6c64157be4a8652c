//! Bytes written to the files outside the sync thread (`write_pending`, the
//! `replicated-written` mode) are synced by it in the background without anyone asking:
//! found on its timer while writes keep coming, and woken for the first write after it
//! has been idle long enough to wait without a deadline.

use fix_codec::UtcTimestamp;
use fix_session::{SessionId, SessionStore};
use fix_store::{Journal, JournalOptions, JournalStore};
use std::time::{Duration, Instant};

/// Waits until everything written is durable; panics naming `what` after 10 s.
fn durable_soon(j: &Journal, written: u64, what: &str) -> Duration {
    let started = Instant::now();
    while j.durable() < written {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: written up to {written}, durable only up to {} after 10 s",
            j.durable()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

#[test]
fn written_bytes_are_synced_unasked_whether_the_sync_thread_was_busy_or_idle() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let id = SessionId::new("FIX.4.4", "ME", "YOU");
    let mut s = JournalStore::open(&j, &id, UtcTimestamp(0)).expect("session");
    j.sync().expect("the declaration is durable");
    let mut seq = 0;
    let mut write = |s: &mut JournalStore| {
        seq += 1;
        s.save_outbound(seq, b"8=FIX.4.4\x019=5\x0135=8\x0110=000\x01")
            .expect("outbound");
        j.write_pending().expect("written")
    };

    // The first write of a journal that never wrote outside the sync thread: it waits
    // without a deadline and must be woken.
    let written = write(&mut s);
    durable_soon(&j, written, "the first write");

    // Writes in quick succession: found on the timer.
    for _ in 0..20 {
        let written = write(&mut s);
        std::thread::sleep(Duration::from_micros(300));
        durable_soon(&j, written, "a write among others");
    }

    // Idle for longer than the sync thread looks on its timer: woken again.
    std::thread::sleep(Duration::from_millis(1_500));
    let written = write(&mut s);
    let took = durable_soon(&j, written, "the first write after a quiet spell");
    println!("synced {took:?} after a write that followed 1.5 s of quiet");
}
