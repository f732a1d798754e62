//! What the harness waits for, each a condition polled by a public wait of
//! [`RedisCluster`]: `Err(what was seen)` until it holds. Every node is asked on its
//! own, and the cluster is ok only when every live node says so and all agree.

use super::RedisCluster;
use super::topology::{self, View};
use std::time::Duration;

/// How long the harness's own commands may wait for a node: a node that is paused
/// or gone is not there yet, and the poll goes on.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

impl RedisCluster {
    /// Node `i`'s `CLUSTER INFO` and `CLUSTER NODES`.
    async fn ask(&self, i: usize) -> Result<(String, View), String> {
        let node = &self.nodes[i];
        let seen = |err: redis::RedisError| format!("node {i} (port {}): {err}", node.port());
        let mut conn = node.connect(ASK_TIMEOUT).await.map_err(seen)?;
        let (info, nodes): (String, String) = redis::pipe()
            .cmd("CLUSTER")
            .arg("INFO")
            .cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(seen)?;
        Ok((info, View::parse(&nodes)))
    }

    /// The nodes running now (paused or not).
    pub(super) fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].pid().is_some())
    }

    fn index_of(&self, port: u16) -> Result<usize, String> {
        let index = self.nodes.iter().position(|node| node.port() == port);
        index.ok_or_else(|| format!("port {port} is no node of this cluster"))
    }

    /// The view every live node agrees on, once all are ok (see [`Self::wait_ok`]).
    pub(super) async fn agreed(&self) -> Result<View, String> {
        let mut agreed: Option<View> = None;
        for i in self.live() {
            let (info, view) = self.ask(i).await?;
            if !topology::info_ok(&info) {
                return Err(format!("node {i} says {info:?}"));
            }
            self.check_live_peers(i, &view)?;
            match &agreed {
                Some(first) if first.slot_map() != view.slot_map() => {
                    return Err(format!("node {i} disagrees on slots: {view:?}"));
                }
                Some(_) => {}
                None => agreed = Some(view),
            }
        }
        agreed.ok_or_else(|| "no live node".to_owned())
    }

    /// Every slot owner in node `i`'s view is live, and no live node is failing in it.
    fn check_live_peers(&self, i: usize, view: &View) -> Result<(), String> {
        for (_, port) in view.slot_map() {
            let owner = self.index_of(port)?;
            if self.nodes[owner].pid().is_none() {
                return Err(format!("node {i} has dead node {owner} serving slots"));
            }
        }
        for live in self.live() {
            if view.at(self.port(live)).is_none_or(|peer| peer.failing()) {
                return Err(format!("node {i} does not see node {live} up"));
            }
        }
        Ok(())
    }

    /// The cluster is ok, and every master has a replica in sync.
    pub(super) async fn formed(&self) -> Result<(), String> {
        let view = self.agreed().await?;
        let masters: Vec<_> = view.slot_map().into_iter().map(|(_, port)| port).collect();
        for port in masters {
            let id = &view
                .at(port)
                .ok_or("a slot owner missing from the view")?
                .id;
            self.synced_replica(&view, id).await?;
        }
        Ok(())
    }

    /// A node replicating the master with this `id`, up in `view` and in sync by its
    /// own account.
    async fn synced_replica(&self, view: &View, id: &str) -> Result<usize, String> {
        for peer in view.replicas_of(id) {
            let replica = self.index_of(peer.port)?;
            if self.nodes[replica].pid().is_some() && self.in_sync(replica).await {
                return Ok(replica);
            }
        }
        Err(format!("no replica of {id} in sync: {view:?}"))
    }

    /// Whether replica `i` has finished its sync with its master.
    async fn in_sync(&self, i: usize) -> bool {
        let Ok(mut conn) = self.nodes[i].connect(ASK_TIMEOUT).await else {
            return false;
        };
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await;
        info.is_ok_and(|info| topology::field(&info, "master_link_status") == Some("up"))
    }

    /// A replica of `master` in sync, once the cluster is ok.
    pub(super) async fn try_replica_of(&self, master: usize) -> Result<usize, String> {
        let view = self.agreed().await?;
        let master_peer = view.at(self.port(master)).ok_or("master not in the view")?;
        self.synced_replica(&view, &master_peer.id).await
    }

    /// Node `i` is back: the cluster is ok with it, and as a replica it is in sync.
    pub(super) async fn rejoined(&self, i: usize) -> Result<(), String> {
        let view = self.agreed().await?;
        let peer = view
            .at(self.port(i))
            .ok_or(format!("node {i} not in the view"))?;
        match &peer.master {
            Some(_) if !self.in_sync(i).await => Err(format!("node {i} not in sync yet")),
            _ => Ok(()),
        }
    }

    /// A node other than `old_master` serves `key`, and the cluster is ok.
    pub(super) async fn failed_over(&self, key: &str, old_master: usize) -> Result<usize, String> {
        let view = self.agreed().await?;
        let slot = self.keyslot(key).await?;
        let port = view.owner(slot).ok_or("no owner")?.port;
        match self.index_of(port)? {
            owner if owner == old_master => Err(format!("node {old_master} still serves it")),
            owner => Ok(owner),
        }
    }

    /// The master of `key`'s slot as the first live node that answers sees it.
    pub(super) async fn try_master_of(&self, key: &str) -> Result<usize, String> {
        let slot = self.keyslot(key).await?;
        let mut last_error = "no live node".to_owned();
        for i in self.live() {
            match self.ask(i).await {
                Ok((_, view)) => {
                    let owner = view.owner(slot).ok_or(format!("node {i} knows no owner"))?;
                    return self.index_of(owner.port);
                }
                Err(why) => last_error = why,
            }
        }
        Err(last_error)
    }

    /// `CLUSTER KEYSLOT key` on the first live node that answers.
    async fn keyslot(&self, key: &str) -> Result<u16, String> {
        let mut last_error = "no live node".to_owned();
        for i in self.live() {
            let slot = async {
                let mut conn = self.nodes[i].connect(ASK_TIMEOUT).await?;
                let keyslot = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone();
                keyslot.query_async::<u16>(&mut conn).await
            };
            match slot.await {
                Ok(slot) => return Ok(slot),
                Err(err) => last_error = format!("node {i}: {err}"),
            }
        }
        Err(last_error)
    }
}
