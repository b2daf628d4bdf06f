// Build with esbuild: node build.mjs          -> dist/ (library, demo page, browser test page)
//                     node build.mjs --tests  -> .test-build/ (node unit tests)
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";

const tests = process.argv.includes("--tests");
const common = { bundle: true, logLevel: "warning", target: "es2022", legalComments: "none" };

if (tests) {
  await rm(".test-build", { recursive: true, force: true });
  const entries = (await readdir("test")).filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await build({
    ...common,
    entryPoints: entries,
    outdir: ".test-build",
    outExtension: { ".js": ".mjs" },
    platform: "node",
    format: "esm",
    sourcemap: "inline",
  });
} else {
  await rm("dist", { recursive: true, force: true });
  await Promise.all([
    // the package: ESM, React left to the app
    build({
      ...common,
      entryPoints: { index: "src/index.ts", react: "src/react.ts" },
      outdir: "dist/lib",
      format: "esm",
      splitting: true,
      external: ["react"],
      sourcemap: true,
    }),
    // the demo page and the hook's browser test page: React bundled in
    build({
      ...common,
      entryPoints: { demo: "demo/main.tsx", "test/hook": "test-pages/hook.tsx", "test/ai-sdk": "test-pages/ai-sdk.tsx" },
      outdir: "dist",
      format: "esm",
      minify: true,
      sourcemap: true,
      jsx: "automatic",
      define: { "process.env.NODE_ENV": '"production"' },
    }),
  ]);
  await mkdir("dist/test", { recursive: true });
  await copyFile("demo/index.html", "dist/index.html");
  await copyFile("demo/demo.css", "dist/demo.css");
  await copyFile("test-pages/hook.html", "dist/test/hook.html");
  await copyFile("test-pages/ai-sdk.html", "dist/test/ai-sdk.html");
}
