// What both pages share: finding their elements, redrawing at most once per animation
// frame, reading JSON the server sent and the events the dashboard's socket carries, and
// the links to the other program's page. An ES module: the pages import it directly.

/** A hidden tab pauses requestAnimationFrame; after this many ms a timer renders instead. */
const RENDER_FALLBACK_MS = 500;

/** The element with this id; throws, naming it, when the page has none. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/**
 * Returns `schedule()`: each call makes sure `render` runs once at the next animation
 * frame, or after RENDER_FALLBACK_MS when the tab is hidden, whichever comes first.
 */
export function renderScheduler(render) {
  const frame = { scheduled: false, raf: 0, timer: 0 };
  const run = () => {
    cancelAnimationFrame(frame.raf);
    clearTimeout(frame.timer);
    frame.scheduled = false;
    render();
  };
  return () => {
    if (frame.scheduled) return;
    frame.scheduled = true;
    frame.raf = requestAnimationFrame(run);
    frame.timer = setTimeout(run, RENDER_FALLBACK_MS);
  };
}

/** `text` parsed as JSON, or null (logged, naming `what` came in) when it is not JSON. */
export function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (err) {
    console.error(`${what} that is not JSON:`, err.message);
    return null;
  }
}

/** Whether `hostname` (as `URL` gives it) names this machine's loopback. */
function isLoopback(hostname) {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]'
    || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The other program's page as this browser can reach it: `href` as configured, but when
 * that names a loopback address and this page was opened by another host (a demo started
 * with HOST=0.0.0.0 and opened from another machine), the same URL on `pageHostname`.
 */
export function peerUrl(href, pageHostname) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return href; // not an absolute URL: the browser resolves it against this page
  }
  if (!isLoopback(url.hostname) || isLoopback(pageHostname)) return href;
  url.hostname = pageHostname;
  return url.href;
}

/** Points every link to the other program's page (`a[data-peer]`) by `peerUrl`. */
export function followThisHost() {
  for (const link of document.querySelectorAll('a[data-peer]')) {
    const configured = link.getAttribute('href');
    const reachable = peerUrl(configured, window.location.hostname);
    if (reachable === configured) continue;
    link.href = reachable;
    if (link.textContent === configured) link.textContent = reachable;
  }
}

/**
 * The events of a frame as `{ seq, task: { batchid, id, owner, priority, created_at } }`:
 * each comes as an array of values, named by the frame's `fields`, which saves a
 * thousand sockets the names' bytes. The dashboard and the tests' socket client both
 * read them with this. A frame without `fields` is taken as objects; anything that is
 * not a list is left out.
 */
export function named(fields, rows) {
  if (!Array.isArray(rows)) return [];
  if (!Array.isArray(fields)) return rows;
  return rows.filter(Array.isArray).map((row) => {
    const event = { seq: undefined, task: {} };
    fields.forEach((field, i) => {
      if (field === 'seq') event.seq = row[i];
      else event.task[field] = row[i];
    });
    return event;
  });
}
