// The wallet component is served by Streamlit from /component/<name>/, so every asset path is
// relative; the bundle goes to build/ (ignored by git, rebuilt by `make setup`).
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: { outDir: "build", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  logLevel: "warn",
});
