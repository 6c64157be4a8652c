//! The journal on real files: recovery, torn tails, resend reads, segment rolls.

use fix_codec::UtcTimestamp;
use fix_session::{SessionId, SessionStore};
use fix_store::{Journal, JournalError, JournalOptions, JournalStore, RecoveryMode};
use std::io::Write;

fn id() -> SessionId {
    SessionId::new("FIX.4.4", "ME", "YOU")
}

fn outbound(store: &dyn SessionStore, begin: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .load_outbound(begin, end, &mut |s, b| out.push((s, b.to_vec())))
        .expect("reads");
    out
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Four threads, each appending `per_thread` outbound messages (`payload(thread, seq)`)
/// to a session of its own (ME → T0 … T3), then running `after` on the journal.
fn append_from_threads(
    j: &Journal,
    per_thread: u64,
    payload: fn(usize, u64) -> Vec<u8>,
    after: fn(&Journal),
) {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                let id = SessionId::new("FIX.4.4", "ME", &format!("T{t}"));
                let mut s = JournalStore::open(&j, &id, UtcTimestamp(0)).expect("session");
                for seq in 1..=per_thread {
                    s.save_outbound(seq, &payload(t, seq)).expect("append");
                }
                after(&j);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}

#[test]
fn sequence_numbers_and_messages_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
        let mut s = JournalStore::open(&j, &id(), UtcTimestamp(5)).expect("session");
        for seq in 1..=10 {
            s.save_outbound(seq, format!("msg{seq}").as_bytes())
                .expect("append");
        }
        s.save_inbound(1, b"in1").expect("append");
        s.set_next_target_seq(7).expect("append");
        j.sync().expect("durable");
        j.shutdown();
    }
    let j = Journal::open(JournalOptions::new(dir.path())).expect("reopen");
    let s = JournalStore::open(&j, &id(), UtcTimestamp(99)).expect("session");
    assert_eq!(s.next_sender_seq(), 11);
    assert_eq!(s.next_target_seq(), 7);
    assert_eq!(
        s.creation_time(),
        UtcTimestamp(5),
        "reopening must not reset"
    );
    let got = outbound(&s, 3, 4);
    assert_eq!(got, vec![(3, b"msg3".to_vec()), (4, b"msg4".to_vec())]);
}

#[test]
fn a_torn_tail_is_truncated_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
        let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
        for seq in 1..=3 {
            s.save_outbound(seq, b"payload").expect("append");
        }
        j.sync().expect("durable");
        j.shutdown();
    }
    let seg = last_segment(dir.path());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open seg");
    f.write_all(&[40, 0, 0, 0, 1, 2, 3]).expect("tear");
    drop(f);
    let before = std::fs::metadata(&seg).expect("meta").len();
    let strict = JournalOptions {
        recovery: RecoveryMode::Strict,
        ..JournalOptions::new(dir.path())
    };
    assert!(matches!(
        Journal::open(strict),
        Err(JournalError::Corrupt { .. })
    ));
    assert_eq!(
        std::fs::metadata(&seg).expect("meta").len(),
        before,
        "strict mode changes nothing"
    );
    let j = Journal::open(JournalOptions::new(dir.path())).expect("tolerant open");
    let s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    assert_eq!(s.next_sender_seq(), 4);
    assert_eq!(outbound(&s, 1, 3).len(), 3);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), before - 7);
}

#[test]
fn corruption_before_the_last_segment_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let opts = JournalOptions {
            segment_size: 256,
            ..JournalOptions::new(dir.path())
        };
        let j = Journal::open(opts).expect("open");
        let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
        for seq in 1..=40 {
            s.save_outbound(seq, &[b'x'; 60]).expect("append");
        }
        j.sync().expect("durable");
        j.shutdown();
    }
    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    segs.sort();
    assert!(segs.len() > 5, "small segments roll: {}", segs.len());
    // Flip a payload byte in the second segment.
    let mut bytes = std::fs::read(&segs[1]).expect("read");
    bytes[30] ^= 0xff;
    std::fs::write(&segs[1], bytes).expect("write");
    let err = Journal::open(JournalOptions::new(dir.path()))
        .err()
        .expect("must refuse");
    let text = err.to_string();
    assert!(text.contains("damaged") && text.contains(".seg"), "{text}");
}

#[test]
fn messages_across_segments_are_read_back_for_resend() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = JournalOptions {
        segment_size: 300,
        ..JournalOptions::new(dir.path())
    };
    let j = Journal::open(opts).expect("open");
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    for seq in 1..=50 {
        s.save_outbound(seq, format!("message-{seq:03}").as_bytes())
            .expect("append");
    }
    // Read before and after durability: both must see every message.
    assert_eq!(outbound(&s, 1, 50).len(), 50);
    j.sync().expect("durable");
    let got = outbound(&s, 20, 22);
    assert_eq!(got[2], (22, b"message-022".to_vec()));
}

#[test]
fn concurrent_appenders_all_become_durable() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    append_from_threads(
        &j,
        500,
        |_, _| b"8=FIX.4.4\x01".to_vec(),
        |j| j.sync().expect("durable"),
    );
    assert_eq!(j.durable(), j.appended());
    j.shutdown();
    let j2 = Journal::open(JournalOptions::new(dir.path())).expect("reopen");
    assert_eq!(j2.session_keys().len(), 4);
}

#[test]
fn without_fsync_concurrent_appends_are_written_at_once_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = || JournalOptions {
        fsync: false,
        segment_size: 4096,
        ..JournalOptions::new(dir.path())
    };
    let j = Journal::open(opts()).expect("open");
    {
        let id = SessionId::new("FIX.4.4", "ME", "ALONE");
        let mut s = JournalStore::open(&j, &id, UtcTimestamp(0)).expect("session");
        for seq in 1..=20 {
            s.save_outbound(seq, b"one").expect("append");
            // Written and published by the append itself: no sync thread to wait for.
            assert_eq!(j.durable(), j.appended(), "published with the append");
        }
    }
    append_from_threads(
        &j,
        300,
        |t, seq| format!("T{t}-{seq:04}").into_bytes(),
        |_| {},
    );
    assert_eq!(j.durable(), j.appended(), "every append published at once");
    // Nothing pending: the files already hold every record, across many segments.
    let segs = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert!(segs > 4, "rolled over segments: {segs}");
    j.shutdown();
    let j2 = Journal::open(JournalOptions {
        recovery: RecoveryMode::Strict,
        ..opts()
    })
    .expect("reopens with no damage anywhere");
    for t in 0..4 {
        let id = SessionId::new("FIX.4.4", "ME", &format!("T{t}"));
        let s = JournalStore::open(&j2, &id, UtcTimestamp(0)).expect("session");
        assert_eq!(s.next_sender_seq(), 301);
        let got = outbound(&s, 1, 300);
        assert_eq!(got.len(), 300);
        assert!(got
            .iter()
            .all(|(seq, b)| b == format!("T{t}-{seq:04}").as_bytes()));
    }
}

#[test]
fn a_reset_clears_messages_and_sequence_numbers() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    s.save_outbound(1, b"a").expect("append");
    s.reset(UtcTimestamp(77)).expect("reset");
    assert_eq!((s.next_sender_seq(), s.next_target_seq()), (1, 1));
    assert!(outbound(&s, 1, 10).is_empty());
    j.sync().expect("durable");
    j.shutdown();
    let j = Journal::open(JournalOptions::new(dir.path())).expect("reopen");
    let s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    assert_eq!(s.creation_time(), UtcTimestamp(77));
    assert!(outbound(&s, 1, 10).is_empty());
}

#[test]
fn an_uncommitted_batch_is_discarded_and_unprocessed_inbound_is_kept_for_replay() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
        let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
        s.save_inbound(1, b"order-1").expect("append");
        s.begin_batch();
        s.save_outbound(1, b"reply-1").expect("append");
        s.commit_batch(1).expect("commit");
        s.save_inbound(2, b"order-2").expect("append");
        s.save_inbound(3, b"order-3").expect("append");
        s.begin_batch();
        s.save_outbound(2, b"reply-2 (never committed)")
            .expect("append");
        j.sync().expect("durable");
        j.shutdown();
    }
    let reopen = || {
        let j = Journal::open(JournalOptions::new(dir.path())).expect("reopen");
        let s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
        (j, s)
    };
    let (j, mut s) = reopen();
    assert_eq!(s.next_sender_seq(), 2, "the cut batch's reply is gone");
    assert_eq!(outbound(&s, 1, 10), vec![(1, b"reply-1".to_vec())]);
    let mut pending = Vec::new();
    s.load_unprocessed_inbound(&mut |seq, m| pending.push((seq, m.to_vec())))
        .expect("reads");
    assert_eq!(
        pending,
        vec![(2, b"order-2".to_vec()), (3, b"order-3".to_vec())]
    );
    // A later commit must not bring the discarded reply back.
    s.begin_batch();
    s.save_outbound(2, b"reply-2").expect("append");
    s.commit_batch(3).expect("commit");
    j.sync().expect("durable");
    j.shutdown();
    drop(s);
    let (_j, s) = reopen();
    assert_eq!(outbound(&s, 2, 2), vec![(2, b"reply-2".to_vec())]);
    let mut pending = Vec::new();
    s.load_unprocessed_inbound(&mut |seq, _| pending.push(seq))
        .expect("reads");
    assert!(pending.is_empty(), "all processed: {pending:?}");
}

#[test]
fn a_fenced_journal_refuses_writes_and_an_older_epoch_cannot_reopen_it() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
        let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
        j.open_epoch(7).expect("leader with epoch 7");
        s.save_outbound(1, b"under epoch 7").expect("append");
        j.fence();
        let refused = s.save_outbound(2, b"as a standby");
        assert!(
            matches!(
                refused,
                Err(fix_session::StoreError::Fenced { current: 7, .. })
            ),
            "{refused:?}"
        );
        assert!(matches!(
            j.open_epoch(5),
            Err(JournalError::Fenced {
                ours: Some(5),
                current: 7
            })
        ));
        j.open_epoch(8).expect("a newer epoch");
        s.save_outbound(2, b"under epoch 8").expect("append");
        j.sync().expect("durable");
        j.shutdown();
    }
    // The newest epoch is recovered from the records themselves.
    let j = Journal::open(JournalOptions::new(dir.path())).expect("reopen");
    assert_eq!(j.epoch(), Some(8));
    assert!(
        j.open_epoch(7).is_err(),
        "a stale leader cannot write after a restart either"
    );
    let s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    assert_eq!(outbound(&s, 1, 2).len(), 2);
}

/// Two journals may never append to one directory (a force-deleted pod and its
/// replacement on one volume): the second open is refused with the holder named, and
/// succeeds once the first has shut down.
#[test]
fn a_journal_directory_has_one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let started = std::time::Instant::now();
    let err = match Journal::open(JournalOptions::new(dir.path())) {
        Ok(_) => panic!("a second journal opened the same directory"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("in use by another process")
            && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "it waited for a release first"
    );
    first.shutdown();
    let second = Journal::open(JournalOptions::new(dir.path())).expect("reopen after shutdown");
    second.shutdown();
}

/// A journal declared failed (a disk too slow to trust) refuses appends, wakes its
/// waiters with the reason, and says what is in flight now.
#[test]
fn a_journal_declared_failed_refuses_appends_and_reports_no_durability() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    s.save_outbound(1, b"before").expect("append");
    j.sync().expect("durable");
    assert!(
        j.sync_in_flight().is_none(),
        "nothing in flight once synced"
    );
    j.declare_failed("the disk took 3000 ms");
    assert!(j.failure().is_some_and(|f| f.contains("3000 ms")));
    assert!(
        s.save_outbound(2, b"after").is_err(),
        "appends are refused after the declaration"
    );
    let waited = j.wait_durable(j.appended() + 1);
    assert!(
        matches!(&waited, Err(JournalError::Failed(why)) if why.contains("3000 ms")),
        "{waited:?}"
    );
    j.declare_failed("a second reason");
    assert!(
        j.failure().is_some_and(|f| f.contains("3000 ms")),
        "the first failure is kept"
    );
    j.shutdown();
}

#[test]
fn appends_wait_for_a_request_and_one_commit_covers_all_of_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let commits = count_commits(&j);
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    j.sync().expect("the session's declaration is durable");
    let before = commits.load(std::sync::atomic::Ordering::SeqCst);
    // An inbound record, the reply it causes and more: nobody has asked yet.
    s.save_inbound(1, b"8=FIX.4.4\x019=5\x0135=D\x0110=000\x01")
        .expect("inbound");
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(
        j.durable() < j.appended(),
        "a batch started before anyone asked: the first record would get an fsync of its own"
    );
    s.save_outbound(1, b"8=FIX.4.4\x019=5\x0135=8\x0110=000\x01")
        .expect("outbound");
    j.request_commit();
    j.sync().expect("durable");
    assert_eq!(j.durable(), j.appended());
    assert_eq!(
        commits.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "one fsync for the inbound record and the reply together"
    );
}

#[test]
fn a_large_pending_backlog_is_committed_without_a_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    let body = vec![b'x'; 64 * 1024];
    let count = fix_store::UNREQUESTED_COMMIT_BYTES / body.len() + 1;
    for seq in 1..=count as u64 {
        s.save_outbound(seq, &body).expect("append");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while j.durable() == 0 || j.durable() < (fix_store::UNREQUESTED_COMMIT_BYTES as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "a backlog over the threshold was never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Counts the journal's group commits (write and fdatasync of one batch).
fn count_commits(j: &Journal) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&commits);
    j.on_commit_timing(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    commits
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "seg") {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn written_records_are_in_the_files_at_once_and_one_background_commit_syncs_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let j = Journal::open(JournalOptions::new(dir.path())).expect("open");
    let commits = count_commits(&j);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let told = std::sync::Arc::clone(&seen);
    j.on_written(move |p| told.store(p, std::sync::atomic::Ordering::SeqCst));
    let mut s = JournalStore::open(&j, &id(), UtcTimestamp(0)).expect("session");
    j.sync().expect("the declaration is durable");
    let before = commits.load(std::sync::atomic::Ordering::SeqCst);
    let durable_before = j.durable();
    s.save_outbound(1, b"8=FIX.4.4\x019=5\x0135=8\x0110=000\x01")
        .expect("outbound");
    assert!(j
        .read_written_stream(durable_before, 1 << 20)
        .expect("reads")
        .is_empty());
    let written = j.write_pending().expect("written");
    assert_eq!(written, j.appended());
    assert_eq!(j.written(), written);
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        written,
        "told"
    );
    assert_eq!(
        j.read_written_stream(durable_before, 1 << 20)
            .expect("reads")
            .len() as u64,
        written - durable_before,
        "what is written can be streamed (synced or not)"
    );
    // What a dead process leaves behind: the files as they are now.
    let copy = tempfile::tempdir().expect("tmp");
    copy_dir(dir.path(), copy.path());
    let reopened = Journal::open(JournalOptions {
        recovery: RecoveryMode::Strict,
        ..JournalOptions::new(copy.path())
    })
    .expect("a copy of the written files opens undamaged");
    let again = JournalStore::open(&reopened, &id(), UtcTimestamp(0)).expect("session");
    assert_eq!(
        outbound(&again, 1, 1).len(),
        1,
        "the written record is there"
    );
    reopened.shutdown();
    // Nobody asks: the background commit syncs it within its interval.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while j.durable() < written {
        assert!(
            std::time::Instant::now() < deadline,
            "what was written was never synced"
        );
        std::thread::sleep(fix_store::WRITTEN_COMMIT_INTERVAL);
    }
    assert_eq!(
        commits.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "one fdatasync for what was written"
    );
}

#[test]
fn writes_from_appenders_and_the_sync_thread_land_in_append_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = || JournalOptions {
        segment_size: 16 * 1024,
        ..JournalOptions::new(dir.path())
    };
    let j = Journal::open(opts()).expect("open");
    append_from_threads(
        &j,
        400,
        |t, seq| format!("T{t}-{seq:04}").into_bytes(),
        |j| {
            for _ in 0..50 {
                j.write_pending().expect("written");
                j.request_commit();
            }
            j.sync().expect("durable");
        },
    );
    // Interleaved for real: each append also races a writer and the sync thread.
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                let id = SessionId::new("FIX.4.4", "ME", &format!("W{t}"));
                let mut s = JournalStore::open(&j, &id, UtcTimestamp(0)).expect("session");
                for seq in 1..=400 {
                    s.save_outbound(seq, format!("W{t}-{seq:04}").as_bytes())
                        .expect("append");
                    if seq % 2 == 0 {
                        j.write_pending().expect("written");
                    } else {
                        j.request_commit();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    j.sync().expect("durable");
    assert_eq!(j.written(), j.appended());
    j.shutdown();
    drop(j);
    let j2 = Journal::open(JournalOptions {
        recovery: RecoveryMode::Strict,
        ..opts()
    })
    .expect("reopens with no damage anywhere");
    for (prefix, n) in [
        ("T0", 400),
        ("T1", 400),
        ("T2", 400),
        ("T3", 400),
        ("W0", 400),
        ("W1", 400),
    ] {
        let id = SessionId::new("FIX.4.4", "ME", prefix);
        let s = JournalStore::open(&j2, &id, UtcTimestamp(0)).expect("session");
        let got = outbound(&s, 1, n);
        assert_eq!(got.len() as u64, n, "{prefix}");
        assert!(got
            .iter()
            .all(|(seq, b)| b == format!("{prefix}-{seq:04}").as_bytes()));
    }
}
