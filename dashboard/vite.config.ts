// Builds the dashboard into dist/, which chartflow serves: index.html at "/" and every other
// file under "/ui/" (engine/http/app_routes.cpp). The server's Content-Security-Policy allows
// only same-origin scripts, so everything is bundled; nothing is loaded from a CDN.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: true,
    // The module-preload polyfill would be harmless, but nothing here needs it.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1000,
  },
});
