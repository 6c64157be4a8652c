use super::*;

const MS: Duration = Duration::from_millis(1);

/// TTL 1.5 s, renew every 300 ms, margin 300 ms (the figures below follow from these).
fn machine() -> (RoleMachine, Instant) {
    let mut cfg = LeaseConfig::new("g", "a");
    cfg.ttl = 1500 * MS;
    cfg.renew_interval = 300 * MS;
    cfg.safety_margin = 300 * MS;
    (RoleMachine::new(cfg, true), Instant::now())
}

fn grant(epoch: u64) -> Grant {
    Grant {
        group: "g".into(),
        owner: "a".into(),
        epoch,
        expires_at_ms: 0,
    }
}

#[test]
fn an_acquired_lease_is_renewed_each_interval_and_lost_at_the_deadline_while_a_renew_hangs() {
    let (mut m, t) = machine();
    assert_eq!(m.poll_call(t), Some(LeaseCall::Acquire));
    assert_eq!(m.poll_call(t), None, "one call at a time");
    m.handle_result(t + 10 * MS, CallResult::Granted(grant(4)), None);
    let change = m.poll_change().expect("leads");
    assert_eq!(change.leading, Some(4));
    // Trusted until sent + TTL − margin = 1200 ms after the acquire was sent.
    assert_eq!(change.valid_until, Some(t + 1200 * MS));
    assert_eq!(m.leading(t + 1199 * MS), Some(4));
    assert_eq!(
        m.poll_call(t + 100 * MS),
        None,
        "not before the renew interval"
    );
    assert_eq!(m.poll_call(t + 310 * MS), Some(LeaseCall::Renew(grant(4))));
    // The renew hangs past the deadline: standby at that instant.
    m.tick(t + 1200 * MS);
    assert_eq!(m.leading(t + 1200 * MS), None);
    let change = m.poll_change().expect("demoted");
    assert_eq!(change.leading, None);
    assert!(
        change.reason.contains("while renewing"),
        "{}",
        change.reason
    );
    // Its late answer changes nothing, and it contends again an interval later.
    m.handle_result(t + 1300 * MS, CallResult::Granted(grant(4)), None);
    assert_eq!(m.leading(t + 1300 * MS), None);
    assert_eq!(m.poll_call(t + 1300 * MS), None);
    assert_eq!(m.poll_call(t + 1500 * MS), Some(LeaseCall::Acquire));
}

#[test]
fn a_refused_renew_demotes_and_a_failed_one_is_retried_until_the_deadline() {
    let (mut m, t) = machine();
    m.poll_call(t);
    m.handle_result(t, CallResult::Granted(grant(1)), None);
    m.poll_change();
    assert!(matches!(
        m.poll_call(t + 300 * MS),
        Some(LeaseCall::Renew(_))
    ));
    m.handle_result(t + 301 * MS, CallResult::Failed("timeout".into()), None);
    assert_eq!(
        m.leading(t + 302 * MS),
        Some(1),
        "still trusted until its deadline"
    );
    assert!(matches!(
        m.poll_call(t + 601 * MS),
        Some(LeaseCall::Renew(_))
    ));
    m.handle_result(t + 602 * MS, CallResult::Refused, None);
    let change = m.poll_change().expect("demoted");
    assert!(change.reason.contains("renew refused"), "{}", change.reason);
}

#[test]
fn a_slow_acquire_is_confirmed_by_a_renew_before_anyone_is_told() {
    let (mut m, t) = machine();
    m.poll_call(t);
    // 1000 ms to answer: 200 ms of trust left, less than a renew interval.
    m.handle_result(t + 1000 * MS, CallResult::Granted(grant(2)), None);
    assert_eq!(m.poll_change(), None, "not published yet");
    assert_eq!(m.leading(t + 1000 * MS), None);
    let now = t + 1000 * MS;
    assert_eq!(m.poll_call(now), Some(LeaseCall::Renew(grant(2))));
    m.handle_result(now + 5 * MS, CallResult::Granted(grant(2)), None);
    let change = m.poll_change().expect("leads once confirmed");
    assert_eq!(change.leading, Some(2));
    assert_eq!(change.valid_until, Some(now + 1200 * MS));
}

#[test]
fn an_acquire_slower_than_the_trust_window_is_confirmed_and_given_back_when_that_fails() {
    let (mut m, t) = machine();
    m.poll_call(t);
    let now = t + 1300 * MS;
    m.handle_result(now, CallResult::Granted(grant(3)), None);
    assert_eq!(m.poll_change(), None);
    assert_eq!(m.poll_call(now), Some(LeaseCall::Renew(grant(3))));
    m.handle_result(now + MS, CallResult::Failed("timeout".into()), None);
    let change = m.poll_change().expect("says why it stays standby");
    assert_eq!(change.leading, None);
    assert!(
        change.reason.contains("confirming it failed"),
        "{}",
        change.reason
    );
    assert_eq!(m.poll_call(now + MS), Some(LeaseCall::Release(grant(3))));
}

#[test]
fn a_step_down_releases_and_pauses_and_an_ineligible_standby_does_not_contend() {
    let (mut m, t) = machine();
    m.poll_call(t);
    m.handle_result(t, CallResult::Granted(grant(5)), None);
    m.poll_change();
    m.step_down(t + 10 * MS, Duration::from_secs(2));
    assert_eq!(m.poll_change().map(|c| c.leading), Some(None));
    assert_eq!(m.poll_call(t + 10 * MS), Some(LeaseCall::Release(grant(5))));
    m.handle_result(t + 11 * MS, CallResult::Refused, None);
    assert_eq!(m.poll_call(t + 1000 * MS), None, "paused");
    assert_eq!(m.poll_call(t + 2010 * MS), Some(LeaseCall::Acquire));
    m.handle_result(
        t + 2011 * MS,
        CallResult::Refused,
        Some(Duration::from_millis(50)),
    );
    m.set_eligible(false);
    assert_eq!(m.poll_call(t + 3000 * MS), None, "not eligible");
}

#[test]
fn an_ineligible_standby_asks_for_no_wake_up_in_the_past() {
    let (mut m, t) = machine();
    m.poll_call(t);
    m.handle_result(t + MS, CallResult::Refused, None);
    m.set_eligible(false);
    let now = t + 1000 * MS;
    assert_eq!(m.poll_call(now), None, "not eligible");
    // Nothing to do until it is eligible again: a wake-up in the past would spin the
    // keeper's loop.
    assert!(
        m.next_wake().is_none_or(|w| w > now),
        "{:?}",
        m.next_wake().map(|w| w.saturating_duration_since(t))
    );
    m.set_eligible(true);
    assert_eq!(m.poll_call(now), Some(LeaseCall::Acquire));
}

#[test]
fn a_standby_looks_again_when_the_watch_ends_not_an_interval_later() {
    let (mut m, t) = machine();
    assert_eq!(m.poll_call(t), Some(LeaseCall::Acquire));
    // The store watches the holder's beat until 120 ms from now.
    m.handle_result(t + MS, CallResult::Refused, Some(120 * MS));
    assert_eq!(m.next_wake(), Some(t + 121 * MS));
    assert_eq!(m.poll_call(t + 120 * MS), None);
    assert_eq!(m.poll_call(t + 121 * MS), Some(LeaseCall::Acquire));
    // Never later than an interval, whatever the store says.
    m.handle_result(t + 122 * MS, CallResult::Refused, Some(5000 * MS));
    assert_eq!(m.next_wake(), Some(t + 422 * MS));
}

#[test]
fn told_the_leader_looks_gone_a_standby_looks_at_once() {
    let (mut m, t) = machine();
    m.poll_call(t);
    m.handle_result(t + MS, CallResult::Refused, None);
    assert_eq!(m.poll_call(t + 50 * MS), None, "an interval between looks");
    m.look_now(t + 50 * MS);
    assert_eq!(m.poll_call(t + 50 * MS), Some(LeaseCall::Acquire));
    // Told while an acquire is on its way (it may have read the beat before the
    // holder's last write): once more as soon as it is answered.
    m.look_now(t + 60 * MS);
    m.handle_result(t + 70 * MS, CallResult::Refused, Some(200 * MS));
    assert_eq!(m.poll_call(t + 70 * MS), Some(LeaseCall::Acquire));
    m.handle_result(t + 80 * MS, CallResult::Refused, None);
    assert_eq!(m.poll_call(t + 80 * MS), None, "only once");
}

#[test]
fn a_holder_or_a_paused_instance_ignores_a_look_now() {
    let (mut m, t) = machine();
    m.poll_call(t);
    m.handle_result(t, CallResult::Granted(grant(7)), None);
    m.poll_change();
    m.look_now(t + 10 * MS);
    assert_eq!(m.poll_call(t + 10 * MS), None, "renews on its interval");
    m.step_down(t + 20 * MS, Duration::from_secs(2));
    assert_eq!(m.poll_call(t + 20 * MS), Some(LeaseCall::Release(grant(7))));
    m.handle_result(t + 21 * MS, CallResult::Refused, None);
    m.look_now(t + 30 * MS);
    assert_eq!(m.poll_call(t + 30 * MS), None, "paused after a step-down");
}
