// What both pages share: finding their elements, redrawing at most once per animation
// frame, and reading JSON the server sent. An ES module: the pages import it directly.

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
