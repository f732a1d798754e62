//! What one cluster node says about the cluster (its `CLUSTER NODES` and `CLUSTER
//! INFO` replies), read into plain data, so that the harness can compare what
//! every node says without a cluster client's own opinion in between.

use std::ops::RangeInclusive;

/// How many hash slots a Redis Cluster has.
pub(super) const SLOTS: u16 = 16_384;

/// One line of `CLUSTER NODES`: one node as the node asked sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) id: String,
    pub(super) port: u16,
    flags: Vec<String>,
    /// The id of the master it replicates, for a replica.
    pub(super) master: Option<String>,
    connected: bool,
    slots: Vec<RangeInclusive<u16>>,
}

impl Peer {
    /// Reads one line, `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch>
    /// <link> <slot>…`; `None` when it is not such a line.
    fn parse(line: &str) -> Option<Peer> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, address, flags, master, _, _, _, link, slots @ ..] = fields.as_slice() else {
            return None;
        };
        let (host_port, _bus) = address.split_once('@')?;
        let port = host_port.rsplit_once(':')?.1.parse().ok()?;
        Some(Peer {
            id: (*id).to_owned(),
            port,
            flags: flags.split(',').map(str::to_owned).collect(),
            master: (*master != "-").then(|| (*master).to_owned()),
            connected: *link == "connected",
            // Slots being migrated are shown as `[slot->-id]`; the harness never migrates.
            slots: slots.iter().filter_map(|range| slot_range(range)).collect(),
        })
    }

    /// Whether the node asked holds this one failed (`fail`) or possibly failed (`fail?`).
    pub(super) fn failing(&self) -> bool {
        self.flags.iter().any(|flag| flag.starts_with("fail"))
    }

    /// Whether it is a replica whose link to the node asked is up and not failing.
    pub(super) fn healthy_replica(&self) -> bool {
        self.flags.iter().any(|flag| flag == "slave") && self.connected && !self.failing()
    }

    fn serves(&self, slot: u16) -> bool {
        self.flags.iter().any(|flag| flag == "master")
            && self.slots.iter().any(|r| r.contains(&slot))
    }
}

/// `0-5460` or `5461`.
fn slot_range(text: &str) -> Option<RangeInclusive<u16>> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    Some(start.parse().ok()?..=end.parse().ok()?)
}

/// The whole cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct View {
    pub(super) peers: Vec<Peer>,
}

impl View {
    /// Reads a `CLUSTER NODES` reply.
    pub(super) fn parse(reply: &str) -> View {
        View {
            peers: reply.lines().filter_map(Peer::parse).collect(),
        }
    }

    /// The master serving `slot`, if any.
    pub(super) fn owner(&self, slot: u16) -> Option<&Peer> {
        self.peers.iter().find(|peer| peer.serves(slot))
    }

    /// Which port serves each slot range, in slot order: two nodes agree on the
    /// slot map when these are equal.
    pub(super) fn slot_map(&self) -> Vec<(RangeInclusive<u16>, u16)> {
        let mut map: Vec<_> = self
            .peers
            .iter()
            .filter(|peer| peer.flags.iter().any(|flag| flag == "master"))
            .flat_map(|peer| peer.slots.iter().map(|range| (range.clone(), peer.port)))
            .collect();
        map.sort_by_key(|(range, _)| *range.start());
        map
    }

    /// The peer on `port`.
    pub(super) fn at(&self, port: u16) -> Option<&Peer> {
        self.peers.iter().find(|peer| peer.port == port)
    }

    /// The healthy replicas of the master with this id.
    pub(super) fn replicas_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Peer> {
        self.peers
            .iter()
            .filter(move |peer| peer.master.as_deref() == Some(id) && peer.healthy_replica())
    }
}

/// Whether a `CLUSTER INFO` reply says the node serves every slot.
pub(super) fn info_ok(info: &str) -> bool {
    field(info, "cluster_state") == Some("ok")
        && field(info, "cluster_slots_ok") == Some(&SLOTS.to_string())
}

/// The value of `name:value` in an `INFO`-style reply.
pub(super) fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 11000
67ed 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238314000 2 disconnected 5461-10922
";

    #[test]
    fn cluster_nodes_lines_give_owners_replicas_and_failures() {
        let view = View::parse(NODES);

        assert_eq!(view.owner(11000).map(|peer| peer.port), Some(30001));
        assert_eq!(view.owner(5461).map(|peer| peer.port), Some(30002));
        assert!(view.at(30002).is_some_and(Peer::failing));
        let replicas: Vec<u16> = view.replicas_of("e7d1").map(|peer| peer.port).collect();
        assert_eq!(replicas, [30004]);
        assert_eq!(view.slot_map()[2], (11000..=11000, 30001));
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info = "cluster_state:ok\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n";

        assert!(info_ok(info));
        assert_eq!(field(info, "cluster_slots_pfail"), Some("0"));
        assert!(!info_ok("cluster_state:fail\r\ncluster_slots_ok:16384\r\n"));
    }
}
