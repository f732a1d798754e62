// What one Redis Cluster node says about the cluster (its CLUSTER NODES and CLUSTER INFO
// replies) read into plain data, as shared/src/testing/cluster/topology.rs does, so that
// cluster.js can compare what every node says without a cluster client's opinion between.

/** How many hash slots a Redis Cluster has. */
export const SLOTS = 16_384;

/** The value of `name:value` in an INFO-style reply. */
export function field(info, name) {
  return info.split(/\r?\n/).find((line) => line.startsWith(`${name}:`))?.slice(name.length + 1).trim();
}

/** One line of `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`. */
export function parsePeer(line) {
  const [id, address, flags, master, , , , link, ...slots] = line.trim().split(/\s+/);
  if (!link) return null;
  return {
    id,
    port: Number(address.split('@')[0].split(':').pop()),
    flags: flags.split(','),
    master: master === '-' ? null : master,
    connected: link === 'connected',
    // `[slot->-id]` marks a slot being migrated; these tests never migrate.
    slots: slots.filter((s) => !s.startsWith('[')).map((s) => s.split('-').map(Number)).map(([a, b = a]) => [a, b]),
  };
}

/** Whether the node asked holds this peer a master. */
export const isMaster = (peer) => peer.flags.includes('master');
/** Whether the node asked holds this peer failed (`fail`) or possibly failed (`fail?`). */
export const isFailing = (peer) => peer.flags.some((flag) => flag.startsWith('fail'));
/** Which port serves each slot range, sorted: two nodes agree on the slots when these are equal. */
export const slotMap = (peers) => peers.filter(isMaster).flatMap((p) => p.slots.map(([a, b]) => `${a}-${b}@${p.port}`)).sort();
/** The master serving `slot`, if any. */
export const ownerOf = (peers, slot) => peers.find((p) => isMaster(p) && p.slots.some(([a, b]) => a <= slot && slot <= b));
