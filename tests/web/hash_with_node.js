// Test harness: run consentry/web/static/hashing.js under Node on jobs written by
// tests/web/test_hashing_js.py, and print the results as JSON (one array, job order).
//
//   node hash_with_node.js jobs.json
//
// Jobs: {op: "md5", file}                  -> md5Hex of the file's bytes
//       {op: "pdq", file, width, height}   -> pdqFromRGBA of raw RGBA pixels in file
//       {op: "hashRGBA", file, width, height} -> hashRGBA (border trim + PDQ)
//       {op: "hashFile", file, rgba, width, height, bitmapWidth, bitmapHeight}
//           -> hashFile(Blob of file) with a stand-in for the browser's decoder and canvas:
//              the "decoded" image is bitmapWidth x bitmapHeight and the canvas hands back
//              the RGBA pixels in rgba (width x height) -- the size hashFile must ask for.
"use strict";

const fs = require("fs");
const path = require("path");

const hashing = require(path.join(__dirname, "../../consentry/web/static/hashing.js"));

function pixels(job) {
  const data = new Uint8Array(fs.readFileSync(job.file));
  if (data.length !== job.width * job.height * 4) {
    throw new Error(`${job.file}: ${data.length} bytes is not ${job.width}x${job.height} RGBA`);
  }
  return new Uint8ClampedArray(data.buffer, data.byteOffset, data.length);
}

// Just enough of the browser for hashFile: createImageBitmap and a 2-D canvas.
function fakeBrowser(job, seen) {
  const rgba = new Uint8ClampedArray(fs.readFileSync(job.rgba));
  globalThis.createImageBitmap = async () => ({
    width: job.bitmapWidth, height: job.bitmapHeight, close() { seen.closed = true; },
  });
  globalThis.document = {
    createElement(tag) {
      const canvas = { tag, width: 0, height: 0, getContext() { return context; } };
      const context = {
        drawImage(source, x, y, w, h) {
          seen.drawn = [x, y, w, h];
          seen.canvas = [canvas.width, canvas.height];
        },
        getImageData(x, y, w, h) {
          seen.smoothing = [this.imageSmoothingEnabled, this.imageSmoothingQuality];
          if (w !== job.width || h !== job.height) throw new Error(`asked for ${w}x${h} pixels`);
          return { data: rgba, width: w, height: h };
        },
      };
      return canvas;
    },
  };
}

async function run(job) {
  switch (job.op) {
    case "md5":
      return hashing.md5Hex(new Uint8Array(fs.readFileSync(job.file)));
    case "pdq":
      return hashing.pdqFromRGBA(pixels(job), job.width, job.height);
    case "hashRGBA":
      return hashing.hashRGBA(pixels(job), job.width, job.height);
    case "hashFile": {
      const seen = {};
      fakeBrowser(job, seen);
      const result = await hashing.hashFile(new Blob([fs.readFileSync(job.file)]));
      return { result, seen };
    }
    default:
      throw new Error(`unknown job ${job.op}`);
  }
}

async function main() {
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const out = [];
  for (const job of jobs) {
    const start = process.hrtime.bigint();
    const result = await run(job);
    out.push({ result, ms: Number(process.hrtime.bigint() - start) / 1e6 });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
