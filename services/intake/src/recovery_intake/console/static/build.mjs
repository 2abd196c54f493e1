// Copies the pinned browser assets out of node_modules into vendor/, the files the console serves.
import { copyFileSync, mkdirSync } from "node:fs";

const assets = {
  "node_modules/chart.js/dist/chart.umd.min.js": "vendor/chart.umd.min.js",
  "node_modules/htmx.org/dist/htmx.min.js": "vendor/htmx.min.js",
};
mkdirSync("vendor", { recursive: true });
for (const [from, to] of Object.entries(assets)) {
  copyFileSync(from, to);
  console.log(`${from} -> ${to}`);
}
