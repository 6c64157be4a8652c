//! Manual failover: a leader is stepped down only once a standby may take its place.
//!
//! Under `replicated` durability the lease store refuses the lease to a standby outside
//! the recorded in-sync set; stepping the leader down before one is in it would only pause
//! the group (the leader takes the lease back when its pause ends).

use super::{admin_request, lock, look, Instance, Seen, Supervisor, SupervisorError, Transition};
use std::time::{Duration, Instant};

/// How often the candidates are read while waiting for one.
const CANDIDATE_POLL: Duration = Duration::from_millis(100);

impl Supervisor {
    /// Manual failover: once a standby may take over (`to`, or any), the leader is asked
    /// to step down for `pause` (with `to`, the other standbys too, so that `to` takes
    /// over), then this waits until traffic has moved. Returns the transition. It waits up
    /// to `limit` for a standby that may take over (without one, nothing is stepped
    /// down), then up to `limit` for the takeover.
    pub async fn failover(
        &self,
        to: Option<&str>,
        pause: Duration,
        limit: Duration,
    ) -> Result<Transition, SupervisorError> {
        if let Some(name) = to {
            if !self.instances.iter().any(|i| i.name == name) {
                let known: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
                return Err(SupervisorError::UnknownInstance(
                    name.into(),
                    known.join(", "),
                ));
            }
        }
        let mut leader = None;
        for i in &self.instances {
            if look(&i.admin).await.leader {
                leader = Some(i.name.clone());
            }
        }
        let leader = leader.ok_or(SupervisorError::NoLeader)?;
        if to == Some(leader.as_str()) {
            return Err(SupervisorError::NoCandidate {
                waited: Duration::ZERO,
                why: format!("{leader} already leads"),
            });
        }
        self.await_candidate(&leader, to, Instant::now() + limit)
            .await?;
        let before = lock(&self.shared.transitions).len();
        let path = format!("/step-down?pause_ms={}", pause.as_millis());
        // With a target, the other standbys stay out too; the leader steps down last.
        let mut order: Vec<&Instance> = match to {
            Some(target) => self
                .instances
                .iter()
                .filter(|i| i.name != target && i.name != leader)
                .collect(),
            None => Vec::new(),
        };
        order.extend(self.instances.iter().filter(|i| i.name == leader));
        for i in order {
            let (code, body) = admin_request(
                &i.admin,
                "POST",
                &path,
                self.options.token.as_deref(),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| SupervisorError::Admin {
                instance: i.name.clone(),
                action: "step-down",
                detail: e.to_string(),
            })?;
            if code != 202 {
                return Err(SupervisorError::Admin {
                    instance: i.name.clone(),
                    action: "step-down",
                    detail: format!("HTTP {code}: {}", body.trim()),
                });
            }
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = lock(&self.shared.transitions)
                .get(before..)
                .and_then(|t| t.last())
            {
                if t.to != leader {
                    return Ok(t.clone());
                }
            }
            if Instant::now() > deadline {
                return Err(SupervisorError::Timeout(limit));
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    /// Waits until an instance other than `leader` (`to` if given) answers and is not
    /// outside the in-sync set, until `deadline`.
    async fn await_candidate(
        &self,
        leader: &str,
        to: Option<&str>,
        deadline: Instant,
    ) -> Result<(), SupervisorError> {
        let started = Instant::now();
        let candidates: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|i| i.name != leader && to.is_none_or(|t| i.name == t))
            .collect();
        loop {
            let mut why = Vec::with_capacity(candidates.len());
            for i in &candidates {
                match refusal(&look(&i.admin).await) {
                    None => return Ok(()),
                    Some(r) => why.push(format!("{} {r}", i.name)),
                }
            }
            if candidates.is_empty() {
                why.push(format!("{leader} is the only instance"));
            }
            if Instant::now() + CANDIDATE_POLL > deadline || candidates.is_empty() {
                return Err(SupervisorError::NoCandidate {
                    waited: started.elapsed(),
                    why: why.join("; "),
                });
            }
            tokio::time::sleep(CANDIDATE_POLL).await;
        }
    }
}

/// Why an instance may not take over now, if it may not.
fn refusal(seen: &Seen) -> Option<&'static str> {
    if !seen.answered {
        Some("does not answer /readyz")
    } else if seen.unreadable.is_some() {
        Some("answers /readyz with a body this supervisor cannot read")
    } else if !seen.contends {
        Some("does not contend for the lease (another region is active, or its journal failed)")
    } else if seen.in_sync == Some(false) {
        Some("is not in the in-sync set")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_outside_the_in_sync_set_or_silent_may_not_take_over() {
        let seen = |answered, in_sync| Seen {
            answered,
            in_sync,
            contends: answered,
            ..Seen::default()
        };
        assert_eq!(refusal(&seen(true, Some(true))), None);
        assert_eq!(refusal(&seen(true, None)), None, "no set kept");
        assert_eq!(
            refusal(&seen(true, Some(false))),
            Some("is not in the in-sync set")
        );
        assert_eq!(refusal(&seen(false, None)), Some("does not answer /readyz"));
        let unreadable = Seen {
            unreadable: Some("unreadable /readyz answer".into()),
            ..seen(true, Some(true))
        };
        assert_eq!(
            refusal(&unreadable),
            Some("answers /readyz with a body this supervisor cannot read")
        );
    }
}
