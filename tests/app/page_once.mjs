// One page of the app, read once it shows a text: its HTML on stdout (and a screenshot, if
// asked). One browser session that waits, rather than a DOM dumped on a timer: a loaded machine
// may take minutes to run the page's script, and a dump taken earlier shows half a page.
//
// node page_once.mjs  (settings in BOUNTYTREE_BROWSER_TEST, a JSON object: url, text, frontend,
// wait_ms, and shot, a PNG path, optional). The text not appearing in time is no error here: the
// HTML read then is printed, for the test to show.
import { launch, VIEWPORT } from "./chromium.mjs";

const cfg = JSON.parse(process.env.BOUNTYTREE_BROWSER_TEST);
const browser = await launch(cfg.frontend);
try {
  const page = await browser.newPage({ viewport: VIEWPORT });
  await page.goto(cfg.url, { timeout: cfg.wait_ms });
  try {
    await page.getByText(cfg.text).first().waitFor({ timeout: cfg.wait_ms });
    await page.waitForLoadState("networkidle", { timeout: 10_000 }).catch(() => {});
    if (cfg.shot) await page.screenshot({ path: cfg.shot, fullPage: true });
  } catch (error) {
    process.stderr.write(String(error));
  }
  process.stdout.write(await page.content());
} finally {
  await browser.close();
}
