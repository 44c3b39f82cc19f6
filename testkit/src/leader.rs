//! Which master leads, asked of each master's own `/status` endpoint (never through the proxy,
//! whose view is what a harness tests). Two rules, because the two harnesses ask different
//! questions:
//!
//! - [`LeaderRule::FirstClaim`] (the benchmark): the first master, in id order, that reports
//!   itself leader; masters after it are not asked, so a poll costs as little as it can and a
//!   measured time includes at most one poll's delay.
//! - [`LeaderRule::FollowedByQuorum`] (the nemesis): a master that reports itself leader and
//!   that a quorum of answering masters (itself included) follow in its ballot, so a deposed
//!   leader that has not yet noticed is not taken for the leader.
//!
//! A master that does not answer within the status timeout (stopped by SIGSTOP, killed,
//! restarting) counts as not answering.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vigil_core::{MasterStatus, Role};

use crate::status;

/// How a leader is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderRule {
    /// The first master that reports itself leader.
    FirstClaim,
    /// A master that reports itself leader, followed in its ballot by at least `quorum`
    /// answering masters, none of them `excluded`.
    FollowedByQuorum {
        /// Masters (the leader included) that must follow it.
        quorum: u64,
        /// A master not asked (one the harness just froze or cut off).
        excluded: Option<usize>,
    },
}

/// A leader search over masters whose `/status` endpoints are `masters[node]`.
#[derive(Clone, Copy, Debug)]
pub struct LeaderSearch<'a> {
    /// Each master's HTTP endpoint, by node id.
    pub masters: &'a [SocketAddr],
    /// How the leader is recognised.
    pub rule: LeaderRule,
    /// How long one master's `/status` may take.
    pub status_timeout: Duration,
}

impl LeaderSearch<'_> {
    /// The leader by [`Self::rule`] and its status, if there is one now.
    pub async fn find(&self) -> Option<(usize, MasterStatus)> {
        let excluded = match self.rule {
            LeaderRule::FirstClaim => None,
            LeaderRule::FollowedByQuorum { excluded, .. } => excluded,
        };
        let mut statuses = Vec::with_capacity(self.masters.len());
        for (node, http) in self.masters.iter().enumerate() {
            if Some(node) == excluded {
                continue;
            }
            let Ok(status) = status::master_status(*http, self.status_timeout).await else {
                continue;
            };
            if self.rule == LeaderRule::FirstClaim && status.role == Role::Leader {
                return Some((node, status));
            }
            statuses.push((node, status));
        }
        match self.rule {
            LeaderRule::FirstClaim => None,
            LeaderRule::FollowedByQuorum { quorum, .. } => followed_by_quorum(&statuses, quorum),
        }
    }

    /// Polls every `interval` until there is a leader whose status satisfies `condition`, for
    /// up to `timeout` (one search at least); that leader and its status.
    pub async fn wait(
        &self,
        timeout: Duration,
        interval: Duration,
        condition: impl Fn(&MasterStatus) -> bool,
    ) -> Option<(usize, MasterStatus)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((node, status)) = self.find().await {
                if condition(&status) {
                    return Some((node, status));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// The master among `statuses` that reports itself leader, if at least `quorum` of them (itself
/// included) follow its ballot.
fn followed_by_quorum(
    statuses: &[(usize, MasterStatus)],
    quorum: u64,
) -> Option<(usize, MasterStatus)> {
    let (node, leader) = statuses
        .iter()
        .find(|(_, status)| status.role == Role::Leader)?;
    let ballot = leader.leader?;
    let followers = statuses
        .iter()
        .filter(|(_, status)| status.leader == Some(ballot))
        .count();
    (followers as u64 >= quorum).then(|| (*node, leader.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vigil_core::{Ballot, MasterCounters};

    fn status(id: u64, role: Role, leader: Option<Ballot>) -> MasterStatus {
        MasterStatus {
            id,
            role,
            promised: leader.unwrap_or(Ballot::ZERO),
            leader,
            commit_index: 0,
            last_slot: 0,
            snapshot_slot: 0,
            active: Vec::new(),
            evicted: Vec::new(),
            counters: MasterCounters::default(),
        }
    }

    /// An endpoint answering every `GET` with `status` as JSON.
    async fn endpoint(status: MasterStatus) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let body = serde_json::to_string(&status).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0u8; 1024];
                let _ = stream.read(&mut head).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn a_leader_counts_only_when_a_quorum_follows_its_ballot() {
        let new = Ballot { round: 7, node: 2 };
        let old = Ballot { round: 3, node: 0 };
        // Master 0 still believes it leads an old ballot; master 2 leads the new one, which
        // masters 1 and 2 follow.
        let masters = vec![
            endpoint(status(0, Role::Leader, Some(old))).await,
            endpoint(status(1, Role::Follower, Some(new))).await,
            endpoint(status(2, Role::Leader, Some(new))).await,
        ];
        let search = |rule| LeaderSearch {
            masters: &masters,
            rule,
            status_timeout: Duration::from_secs(10),
        };
        let first = search(LeaderRule::FirstClaim)
            .find()
            .await
            .map(|(node, _)| node);
        assert_eq!(first, Some(0), "the first claim wins, deposed or not");
        let quorum = |excluded| LeaderRule::FollowedByQuorum {
            quorum: 2,
            excluded,
        };
        let deposed_first = search(quorum(None)).find().await;
        assert_eq!(
            deposed_first.map(|(node, _)| node),
            None,
            "master 0 has no quorum"
        );
        let without_deposed = search(quorum(Some(0))).find().await;
        assert_eq!(without_deposed.map(|(node, _)| node), Some(2));
        let without_follower = search(quorum(Some(1))).find().await;
        assert_eq!(without_follower.map(|(node, _)| node), None);
    }

    #[test]
    fn no_leader_without_a_ballot_or_a_claim() {
        let ballot = Ballot { round: 1, node: 1 };
        let followers = vec![
            (0, status(0, Role::Follower, Some(ballot))),
            (1, status(1, Role::Candidate, None)),
        ];
        assert!(followed_by_quorum(&followers, 1).is_none());
        let leader_without_ballot = vec![(0, status(0, Role::Leader, None))];
        assert!(followed_by_quorum(&leader_without_ballot, 1).is_none());
    }
}
