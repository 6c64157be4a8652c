use super::*;
use proptest::prelude::*;

const WAIT: Duration = Duration::from_millis(300);

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A leader `a` whose takeover record landed.
fn leading(policy: OnStandbyLoss) -> (InSyncSet, Instant) {
    let t = Instant::now();
    let mut s = InSyncSet::new("a", policy, WAIT, true);
    s.lead(7);
    assert_eq!(
        s.committed(),
        0,
        "nothing is durable before the takeover record"
    );
    let r = s.poll(t, 0).expect("takeover record");
    assert_eq!(
        r,
        Record {
            epoch: 7,
            members: set(&["a"])
        }
    );
    assert_eq!(s.poll(t, 0), None, "one write at a time");
    s.written(&r, Ok(true), t);
    (s, t)
}

/// `b` connects, streams, and is recorded; returns the time after.
fn join_b(s: &mut InSyncSet, t: Instant, durable: u64) -> Instant {
    s.connected("b", true);
    s.acked("b", durable, true);
    let r = s.poll(t, durable).expect("b joins");
    assert_eq!(r.members, set(&["a", "b"]));
    s.written(&r, Ok(true), t);
    t
}

#[test]
fn alone_after_takeover_shrink_commits_locally_and_halt_commits_nothing() {
    let (s, _) = leading(OnStandbyLoss::Shrink);
    assert_eq!(s.committed(), u64::MAX);
    let (s, _) = leading(OnStandbyLoss::Halt);
    assert_eq!(s.committed(), 0);
}

#[test]
fn a_joined_standby_is_required_for_every_later_record() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    let t = join_b(&mut s, t, 100);
    s.durable(t, 200);
    assert_eq!(s.committed(), 100, "200 waits for b");
    s.acked("b", 200, true);
    assert_eq!(s.committed(), 200);
}

#[test]
fn a_joiner_is_recorded_only_once_it_holds_what_was_answered_alone() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 1000);
    s.connected("b", true);
    s.acked("b", 900, true);
    assert_eq!(
        s.poll(t, 1000),
        None,
        "not recorded while 900..1000 is missing"
    );
    assert_eq!(s.committed(), 900, "but required from now on");
    s.acked("b", 1000, true);
    let r = s.poll(t, 1000).expect("recorded now");
    assert_eq!(r.members, set(&["a", "b"]));
}

#[test]
fn a_stalled_member_is_dropped_only_by_a_recorded_write_and_stays_required_until_then() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    assert_eq!(s.poll(t + WAIT / 2, 50), None, "not yet waited long enough");
    let later = t + WAIT;
    let r = s.poll(later, 50).expect("shrink");
    assert_eq!(r.members, set(&["a"]));
    assert_eq!(
        s.committed(),
        0,
        "b is required until the smaller set is recorded"
    );
    s.written(&r, Ok(false), later);
    assert_eq!(s.committed(), 0, "a refused write changes nothing");
    assert_eq!(s.view(later).shrinks, 0);
}

#[test]
fn after_the_shrink_lands_the_leader_goes_on_alone_and_the_standby_rejoins() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    let later = t + WAIT;
    let r = s.poll(later, 50).expect("shrink");
    s.written(&r, Ok(true), later);
    assert_eq!(s.committed(), u64::MAX);
    assert_eq!(s.view(later).recorded, Some(vec!["a".to_string()]));
    s.acked("b", 50, true);
    let r = s.poll(later, 50).expect("rejoin");
    assert_eq!(r.members, set(&["a", "b"]));
    s.written(&r, Ok(true), later);
    let v = s.view(later);
    assert_eq!((v.shrinks, v.expands), (1, 2), "b joined twice, left once");
}

#[test]
fn halt_never_drops_a_member() {
    let (mut s, t) = leading(OnStandbyLoss::Halt);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    let later = t + WAIT * 10;
    assert_eq!(s.poll(later, 50), None);
    assert_eq!(s.committed(), 0);
    assert!(s.view(later).halted);
}

#[test]
fn a_standby_messages_must_not_wait_for_never_joins() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    s.connected("remote", false);
    s.acked("remote", 100, true);
    assert_eq!(s.poll(t, 100), None);
    assert_eq!(s.committed(), u64::MAX);
}

#[test]
fn a_stalled_joiner_is_dropped_without_a_write() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    s.connected("b", true);
    s.acked("b", 90, true);
    assert_eq!(s.poll(t, 100), None);
    assert_eq!(s.committed(), 90);
    assert_eq!(s.poll(t + WAIT, 100), None, "nothing to record");
    assert_eq!(s.committed(), u64::MAX, "b no longer holds records back");
}

#[test]
fn a_new_term_starts_over_and_without_enforcement_clears_the_record_once() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    join_b(&mut s, t, 0);
    s.lead(8);
    assert_eq!(s.committed(), 0);
    assert_eq!(s.poll(t, 0).map(|r| r.members), Some(set(&["a"])));

    let mut s = InSyncSet::new("a", OnStandbyLoss::Shrink, WAIT, false);
    s.lead(3);
    assert_eq!(s.committed(), u64::MAX);
    let r = s.poll(t, 0).expect("clear");
    assert!(r.members.is_empty());
    s.written(&r, Ok(true), t);
    assert_eq!(s.poll(t, 0), None);
}

#[derive(Debug, Clone)]
enum Step {
    Write(u64),
    Ack(usize, u64),
    Connect(usize),
    Disconnect(usize),
    Elapse(u64),
    Poll,
    Land(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..200u64).prop_map(Step::Write),
        (0..3usize, 0..400u64).prop_map(|(i, p)| Step::Ack(i, p)),
        (0..3usize).prop_map(Step::Connect),
        (0..3usize).prop_map(Step::Disconnect),
        (0..400u64).prop_map(Step::Elapse),
        Just(Step::Poll),
        any::<bool>().prop_map(Step::Land),
    ]
}

proptest! {
    /// Whatever the interleaving: every record ever acted on (durable here and committed)
    /// is held by every member of the set recorded in the store.
    #[test]
    fn every_acknowledged_record_is_on_every_recorded_member(
        steps in proptest::collection::vec(step(), 1..200),
        halt in any::<bool>(),
    ) {
        let names = ["b", "c", "d"];
        let policy = if halt { OnStandbyLoss::Halt } else { OnStandbyLoss::Shrink };
        let mut s = InSyncSet::new("a", policy, WAIT, true);
        s.lead(1);
        let mut now = Instant::now();
        let mut durable = 0u64;
        let mut acked = [0u64; 3];
        let mut connected = [0u32; 3];
        let mut store: Option<BTreeSet<String>> = None;
        let mut pending: Option<Record> = None;
        let mut answered = 0u64;
        for st in steps {
            match st {
                Step::Write(n) => {
                    durable += n;
                    s.durable(now, durable);
                }
                Step::Ack(i, p) => {
                    if connected[i] > 0 {
                        let p = acked[i].max(p.min(durable));
                        acked[i] = p;
                        s.acked(names[i], p, p == durable);
                    }
                }
                Step::Connect(i) => {
                    connected[i] += 1;
                    s.connected(names[i], i != 2);
                }
                Step::Disconnect(i) => {
                    if connected[i] > 0 {
                        connected[i] -= 1;
                        s.disconnected(names[i]);
                    }
                }
                Step::Elapse(ms) => now += Duration::from_millis(ms),
                Step::Poll => {
                    if let Some(r) = s.poll(now, durable) {
                        pending = Some(r);
                    }
                }
                Step::Land(ok) => {
                    if let Some(r) = pending.take() {
                        if ok {
                            store = Some(r.members.clone());
                        }
                        s.written(&r, Ok(ok), now);
                    }
                }
            }
            answered = answered.max(s.committed().min(durable));
            if let Some(members) = &store {
                for (i, n) in names.iter().enumerate() {
                    if members.contains(*n) {
                        prop_assert!(
                            acked[i] >= answered,
                            "{n} recorded in sync with {} but {answered} was answered",
                            acked[i]
                        );
                    }
                }
            } else {
                prop_assert_eq!(answered, 0, "answered before the takeover record");
            }
        }
    }
}
