// The real headless Chromium every browser test drives (playwright-core, from the wallet
// component's own node_modules, so that the tests need no second copy of it).
import { createRequire } from "node:module";
import path from "node:path";

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launch(frontend) {
  const require = createRequire(path.join(frontend, "package.json"));
  const { chromium } = require("playwright-core");
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
}

export const VIEWPORT = { width: 1400, height: 1100 };
