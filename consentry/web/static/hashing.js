/* Hash an image on this device, so that the image itself never has to leave it (as
   StopNCII does): the MD5 of the file's bytes and Meta's PDQ perceptual hash of its
   pixels, bit for bit as the server computes them (consentry/signals/hashing.py, which
   uses the `pdqhash` package, a wrapper of Meta's C++ reference).

   Plain ES2017, no modules, no build step. Defines the global `ConsentryHashing`; under
   Node, `require()` returns the same object (the tests run it there). */

var ConsentryHashing = (function () {
  "use strict";

  // ------------------------------------------------------------------------------------
  // MD5 (RFC 1321)
  // ------------------------------------------------------------------------------------

  // Per-round shift amounts, and T[i] = floor(2^32 * |sin(i + 1)|) written out rather
  // than computed, so no engine's Math.sin can change them.
  var MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  var MD5_T = new Int32Array([
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391
  ]);

  // Mix one 64-byte block (16 little-endian words read from `view` at `offset`) into
  // `state`. All arithmetic is on int32 (`| 0`), which is exactly MD5's mod 2^32.
  function md5Block(state, view, offset, words) {
    var i, f, g, rotated, next;
    for (i = 0; i < 16; i++) words[i] = view.getInt32(offset + 4 * i, true);
    var a = state[0], b = state[1], c = state[2], d = state[3];
    for (i = 0; i < 64; i++) {
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
      else { f = c ^ (b | ~d); g = (7 * i) & 15; }
      next = (a + f + MD5_T[i] + words[g]) | 0;
      var s = MD5_SHIFTS[((i >> 4) << 2) | (i & 3)];
      rotated = (next << s) | (next >>> (32 - s));
      a = d; d = c; c = b;
      b = (b + rotated) | 0;
    }
    state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0;
    state[2] = (state[2] + c) | 0; state[3] = (state[3] + d) | 0;
  }

  // The last bytes that do not fill a block, then 0x80, zeros and the length in bits as
  // a 64-bit little-endian number: one or two blocks.
  function md5Tail(bytes) {
    var n = bytes.length, rest = n % 64;
    var tail = new Uint8Array(rest < 56 ? 64 : 128);
    tail.set(bytes.subarray(n - rest));
    tail[rest] = 0x80;
    var view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, (n * 8) >>> 0, true);
    view.setUint32(tail.length - 4, Math.floor(n / 0x20000000), true);  // n * 8 / 2^32
    return view;
  }

  /** MD5 of `bytes` (a Uint8Array) as 32 lowercase hex characters. */
  function md5Hex(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("md5Hex expects a Uint8Array");
    var state = new Int32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
    var words = new Int32Array(16);
    var whole = bytes.length - (bytes.length % 64);
    var view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (var offset = 0; offset < whole; offset += 64) md5Block(state, view, offset, words);
    var tail = md5Tail(bytes);
    for (offset = 0; offset < tail.byteLength; offset += 64) md5Block(state, tail, offset, words);
    var out = "";
    for (var i = 0; i < 16; i++) {  // each word's bytes low first, as MD5 outputs them
      var byte = (state[i >> 2] >>> (8 * (i & 3))) & 0xff;
      out += (byte < 16 ? "0" : "") + byte.toString(16);
    }
    return out;
  }

  // ------------------------------------------------------------------------------------
  // PDQ, as Meta's reference (pdq/cpp/hashing/pdqhashing.cpp, downscaling.cpp)
  // ------------------------------------------------------------------------------------
  // The reference works in 32-bit floats. Every sum below is rounded to float32 at the
  // same step as in C++ (Math.fround, or a store into a Float32Array), so the median
  // comparisons see the same numbers and the bits come out the same.

  var f32 = Math.fround;
  var MIN_HASHABLE_SIDE = 5;  // the reference gives an all-zero hash below this
  var DCT = dctMatrix();

  // 16 x 64 matrix of DCT-II basis rows 1..16 (row 0, the mean, is not used by PDQ).
  function dctMatrix() {
    var matrix = new Float32Array(16 * 64);
    var scale = f32(Math.sqrt(2 / 64));
    for (var i = 0; i < 16; i++) {
      for (var j = 0; j < 64; j++) {
        matrix[i * 64 + j] = scale * Math.cos((Math.PI / 2 / 64) * (i + 1) * (2 * j + 1));
      }
    }
    return matrix;
  }

  // Luma of the pixels inside `box` ([left, top, right, bottom)) of RGBA `data` whose rows
  // are `width` pixels. pdqhash computes 0.299R + 0.587G + 0.114B in double precision and
  // then stores it as float32; the alpha channel is ignored, as the server drops it.
  function lumaOf(data, width, box) {
    var cols = box[2] - box[0], rows = box[3] - box[1];
    var luma = new Float32Array(rows * cols);
    for (var y = 0, k = 0; y < rows; y++) {
      var p = ((box[1] + y) * width + box[0]) * 4;
      for (var x = 0; x < cols; x++, p += 4) {
        luma[k++] = data[p] * 0.299 + data[p + 1] * 0.587 + data[p + 2] * 0.114;
      }
    }
    return luma;
  }

  // One box-filter pass along a line of `length` values `stride` apart, as the
  // reference's box1DFloat: a centred window of `window` values that shrinks at both
  // ends instead of padding, so the edges are averages of real pixels.
  function box1D(src, dst, start, length, stride, window) {
    var half = (window + 2) >> 1;
    var sum = 0, count = 0, add = start, drop = start, out = start, i;
    for (i = 0; i < half - 1; i++, add += stride) {
      sum = f32(sum + src[add]); count++;
    }
    for (i = 0; i < window - half + 1; i++, add += stride, out += stride) {
      sum = f32(sum + src[add]); count++;
      dst[out] = sum / count;  // float32 store: the same rounding as C++ float division
    }
    for (i = 0; i < length - window; i++, add += stride, drop += stride, out += stride) {
      sum = f32(f32(sum + src[add]) - src[drop]);
      dst[out] = sum / count;
    }
    for (i = 0; i < half - 1; i++, drop += stride, out += stride) {
      sum = f32(sum - src[drop]); count--;
      dst[out] = sum / count;
    }
  }

  // Jarosz filter: two passes of box filters along rows then columns approximate a tent
  // filter, with a window of about 1/128 of the side so that the later sampling at 64
  // points does not alias. The result is back in `luma`.
  function jaroszFilter(luma, rows, cols) {
    var other = new Float32Array(luma.length);
    var rowWindow = Math.floor((cols + 2 * 64 - 1) / (2 * 64));
    var colWindow = Math.floor((rows + 2 * 64 - 1) / (2 * 64));
    for (var pass = 0; pass < 2; pass++) {
      for (var i = 0; i < rows; i++) box1D(luma, other, i * cols, cols, 1, rowWindow);
      for (var j = 0; j < cols; j++) box1D(other, luma, j, rows, cols, colWindow);
    }
  }

  // Sample the filtered image at the centres of a 64 x 64 grid.
  function decimate64(luma, rows, cols) {
    var out = new Float32Array(64 * 64);
    for (var i = 0; i < 64; i++) {
      var y = Math.floor(((i + 0.5) * rows) / 64);
      for (var j = 0; j < 64; j++) {
        out[i * 64 + j] = luma[y * cols + Math.floor(((j + 0.5) * cols) / 64)];
      }
    }
    return out;
  }

  // The reference's quality: the sum of the significant gradients between neighbouring
  // samples (each truncated to an integer percentage of full scale), / 90, capped at 100.
  function quality64(block) {
    function step(u, v) { return Math.abs(Math.trunc(f32(f32(f32(u - v) * 100) / 255))); }
    var sum = 0, i, j;
    for (i = 0; i < 63; i++) {
      for (j = 0; j < 64; j++) sum += step(block[i * 64 + j], block[(i + 1) * 64 + j]);
    }
    for (i = 0; i < 64; i++) {
      for (j = 0; j < 63; j++) sum += step(block[i * 64 + j], block[i * 64 + j + 1]);
    }
    return Math.min(100, Math.floor(sum / 90));
  }

  // B = D A D^T: the 16 x 16 lowest non-constant frequencies of the 64 x 64 block, each
  // dot product accumulated in float32 in the reference's order.
  function dct64To16(block) {
    var t = new Float32Array(16 * 64), out = new Float32Array(16 * 16), i, j, k, sum;
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 64; j++) {
        for (sum = 0, k = 0; k < 64; k++) sum = f32(sum + f32(DCT[i * 64 + k] * block[k * 64 + j]));
        t[i * 64 + j] = sum;
      }
    }
    for (i = 0; i < 16; i++) {
      for (j = 0; j < 16; j++) {
        for (sum = 0, k = 0; k < 64; k++) sum = f32(sum + f32(t[i * 64 + k] * DCT[j * 64 + k]));
        out[i * 16 + j] = sum;
      }
    }
    return out;
  }

  // Torben Mogensen's median (as the reference uses): bisect on value between the min
  // and max until at most half the values lie on either side. For an even count it
  // returns the lower middle value, which is what the bits are thresholded against.
  function torbenMedian(m) {
    var n = m.length, half = (n + 1) >> 1, lo = m[0], hi = m[0], i;
    for (i = 1; i < n; i++) { if (m[i] < lo) lo = m[i]; if (m[i] > hi) hi = m[i]; }
    for (;;) {
      var guess = f32(f32(lo + hi) / 2), less = 0, greater = 0, equal = 0;
      var below = lo, above = hi;
      for (i = 0; i < n; i++) {
        if (m[i] < guess) { less++; if (m[i] > below) below = m[i]; }
        else if (m[i] > guess) { greater++; if (m[i] < above) above = m[i]; }
        else equal++;
      }
      if (less <= half && greater <= half) {
        if (less >= half) return below;
        return less + equal >= half ? guess : above;
      }
      if (less > greater) hi = below; else lo = above;
    }
  }

  // Bit k (= 16 * row + column of the DCT output) is set when that coefficient is above
  // the median. Meta's hex form writes bit 255 first, as the server does (numpy.packbits
  // of pdqhash's vector, whose element 0 is bit 255).
  function bitsToHex(coefficients) {
    var median = torbenMedian(coefficients), hex = "";
    for (var k = 255; k >= 0; k -= 4) {
      var nibble = 0;
      for (var b = 0; b < 4; b++) nibble = (nibble << 1) | (coefficients[k - b] > median ? 1 : 0);
      hex += nibble.toString(16);
    }
    return hex;
  }

  function checkPixels(data, width, height) {
    if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array)) {
      throw new TypeError("expected RGBA pixels as a Uint8ClampedArray or Uint8Array");
    }
    if (!(width > 0 && height > 0) || width % 1 || height % 1 || data.length < width * height * 4) {
      throw new RangeError("RGBA data does not hold " + width + " x " + height + " pixels");
    }
  }

  // PDQ of the `box` of an RGBA image: {hash: 64 hex chars, quality: 0..100}.
  function pdqOfBox(data, width, box) {
    var cols = box[2] - box[0], rows = box[3] - box[1];
    if (rows < MIN_HASHABLE_SIDE || cols < MIN_HASHABLE_SIDE) {
      return { hash: new Array(65).join("0"), quality: 0 };
    }
    var luma = lumaOf(data, width, box);
    jaroszFilter(luma, rows, cols);
    var block = decimate64(luma, rows, cols);
    return { hash: bitsToHex(dct64To16(block)), quality: quality64(block) };
  }

  /** Meta's PDQ of RGBA pixels (as from getImageData): {hash, quality}, where hash is 64
      lowercase hex characters and quality 0..100 (the server keeps hashes >= 50). */
  function pdqFromRGBA(data, width, height) {
    checkPixels(data, width, height);
    return pdqOfBox(data, width, [0, 0, width, height]);
  }

  // ------------------------------------------------------------------------------------
  // Border trimming, as `border_box` in consentry/signals/hashing.py
  // ------------------------------------------------------------------------------------
  // Letterbox bars change PDQ completely; the server hashes the image without them, so
  // the page must too. Same constants, same tests, on the same 8-bit luma.

  var BORDER = { darkMax: 32, lightMin: 224, meanDeviation: 4, outlierLevel: 32,
                 outlierFraction: 0.002, maxTrimFraction: 0.4 };

  // 8-bit luma exactly as Pillow's convert("L"): ITU-R 601-2 in 16-bit fixed point.
  function luma8(data, width, height) {
    var out = new Uint8Array(width * height);
    for (var i = 0, p = 0; i < out.length; i++, p += 4) {
      out[i] = (data[p] * 19595 + data[p + 1] * 38470 + data[p + 2] * 7471 + 0x8000) >> 16;
    }
    return out;
  }

  // Median of n values `step` apart from `first` (mean of the two middle ones if n is
  // even, as numpy.median), by counting: the values are bytes.
  function lineMedian(luma, first, step, n) {
    var counts = new Uint32Array(256), i, seen = 0, low = -1;
    for (i = 0; i < n; i++) counts[luma[first + i * step]]++;
    for (var v = 0; v < 256; v++) {
      seen += counts[v];
      if (low < 0 && seen > (n - 1) >> 1) low = v;
      if (seen > n >> 1) return (low + v) / 2;
    }
    return low;
  }

  function isBorderLine(luma, first, step, n, colour) {
    var deviation = 0, outliers = 0;
    for (var i = 0; i < n; i++) {
      var d = Math.abs(luma[first + i * step] - colour);
      deviation += d;
      if (d > BORDER.outlierLevel) outliers++;
    }
    // numpy takes this mean in float32: round the same way before comparing.
    return f32(deviation / n) <= BORDER.meanDeviation && outliers / n <= BORDER.outlierFraction;
  }

  // How many lines, starting at `first` and `lineStep` apart (pixels `step` apart within
  // a line, n of them), are border; up to `cap`.
  function borderRun(luma, first, lineStep, step, n, cap) {
    var colour = lineMedian(luma, first, step, n);
    if (colour > BORDER.darkMax && colour < BORDER.lightMin) return 0;
    for (var k = 0; k < cap; k++) {
      if (!isBorderLine(luma, first + k * lineStep, step, n, colour)) return k;
    }
    return cap;
  }

  /** The box [left, top, right, bottom) (right/bottom exclusive) left after trimming
      uniform near-black/near-white borders from RGBA pixels; the whole image if none. */
  function borderBox(data, width, height) {
    checkPixels(data, width, height);
    var w = width, h = height;
    var mh = Math.floor(h * BORDER.maxTrimFraction), mw = Math.floor(w * BORDER.maxTrimFraction);
    if (mh < 1 || mw < 1) return [0, 0, w, h];
    var luma = luma8(data, w, h);
    var top = borderRun(luma, 0, w, 1, w, mh);
    var bottom = borderRun(luma, (h - 1) * w, -w, 1, w, mh);
    var left = borderRun(luma, 0, 1, w, h, mw);
    var right = borderRun(luma, w - 1, -1, w, h, mw);
    // A run that reaches the cap is a large uniform area, not a bar: keep it.
    if (top >= mh) top = 0;
    if (bottom >= mh) bottom = 0;
    if (left >= mw) left = 0;
    if (right >= mw) right = 0;
    return [left, top, w - right, h - bottom];
  }

  /** What the server hashes: PDQ of the pixels after border trimming.
      Returns {hash, quality, box}. */
  function hashRGBA(data, width, height) {
    var box = borderBox(data, width, height);
    var pdq = pdqOfBox(data, width, box);
    return { hash: pdq.hash, quality: pdq.quality, box: box };
  }

  // ------------------------------------------------------------------------------------
  // In the browser: a File (or any Blob) to hashes
  // ------------------------------------------------------------------------------------

  var WORK_MAX_SIDE = 768;  // the server hashes at most this size (WORK_MAX_SIDE there)

  function readBytes(file) {
    if (typeof file.arrayBuffer === "function") {
      return file.arrayBuffer().then(function (buffer) { return new Uint8Array(buffer); });
    }
    return new Promise(function (resolve, reject) {  // Safari < 14
      var reader = new FileReader();
      reader.onload = function () { resolve(new Uint8Array(reader.result)); };
      reader.onerror = function () {
        reject(reader.error || new Error("the file could not be read"));
      };
      reader.readAsArrayBuffer(file);
    });
  }

  function decodeWithImg(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () {
        URL.revokeObjectURL(url);
        reject(new Error("this file is not an image this browser can read"));
      };
      img.src = url;
    });
  }

  // createImageBitmap decodes off the main thread; some browsers lack it or refuse some
  // formats through it, and an <img> may still manage.
  function decodeImage(file) {
    if (typeof createImageBitmap !== "function") return decodeWithImg(file);
    return createImageBitmap(file).catch(function () { return decodeWithImg(file); });
  }

  function newCanvas(width, height) {
    if (typeof document !== "undefined") {
      var canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      return canvas;
    }
    return new OffscreenCanvas(width, height);  // in a worker
  }

  // Draw the image at most WORK_MAX_SIDE on its longest side and read its RGBA pixels.
  function pixelsOf(source, width, height) {
    var scale = Math.min(1, WORK_MAX_SIDE / Math.max(width, height));
    var w = Math.max(1, Math.round(width * scale)), h = Math.max(1, Math.round(height * scale));
    var context = newCanvas(w, h).getContext("2d", { willReadFrequently: true });
    if (!context) throw new Error("this browser cannot draw images here");
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";  // a filtered downscale, like the server's
    context.drawImage(source, 0, 0, w, h);
    return context.getImageData(0, 0, w, h);
  }

  /** Hash an image file on this device. Resolves to {pdq, md5, quality, width, height}:
      pdq 64 hex chars, md5 32 hex chars of the exact file bytes, quality 0..100, and the
      image's own size in pixels. Rejects with an Error if it cannot be read as an image. */
  function hashFile(file) {
    return Promise.all([readBytes(file), decodeImage(file)]).then(function (results) {
      var source = results[1];
      var width = source.naturalWidth || source.width;  // <img> or ImageBitmap
      var height = source.naturalHeight || source.height;
      if (!(width > 0 && height > 0)) throw new Error("this image has no size");
      var pixels = pixelsOf(source, width, height);
      if (typeof source.close === "function") source.close();  // free the ImageBitmap
      var pdq = hashRGBA(pixels.data, pixels.width, pixels.height);
      return { pdq: pdq.hash, md5: md5Hex(results[0]), quality: pdq.quality,
               width: width, height: height };
    });
  }

  return {
    md5Hex: md5Hex,
    pdqFromRGBA: pdqFromRGBA,
    borderBox: borderBox,
    hashRGBA: hashRGBA,
    hashFile: hashFile,
    WORK_MAX_SIDE: WORK_MAX_SIDE
  };
})();

if (typeof module !== "undefined" && module.exports) module.exports = ConsentryHashing;
