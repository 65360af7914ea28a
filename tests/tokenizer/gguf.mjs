// gguf.mjs — reads the metadata key/value section of a GGUF v3 file (no
// tensors) so the cross-check builds its tokenizer.json from the GGUF
// independently of the C reader under test.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';

const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function readGgufMetadata(path) {
  const fd = openSync(path, 'r');
  // The metadata of a tokenizer-bearing model is a few MB at most; read up to
  // 64 MB, or the whole file if smaller.
  const size = Math.min(fstatSync(fd).size, 64 << 20);
  const buf = Buffer.alloc(size);
  readSync(fd, buf, 0, size, 0);
  closeSync(fd);
  let o = 0;
  const need = (n) => { if (o + n > buf.length) throw new Error(`${path}: metadata truncated at byte ${o}`); };
  const u32 = () => { need(4); const v = buf.readUInt32LE(o); o += 4; return v; };
  const u64 = () => { need(8); const v = buf.readBigUInt64LE(o); o += 8; return Number(v); };
  const str = () => { const n = u64(); need(n); const s = buf.toString('utf8', o, o + n); o += n; return s; };
  const value = (t) => {
    switch (t) {
      case 0: need(1); return buf.readUInt8(o++);
      case 1: need(1); return buf.readInt8(o++);
      case 2: need(2); o += 2; return buf.readUInt16LE(o - 2);
      case 3: need(2); o += 2; return buf.readInt16LE(o - 2);
      case 4: return u32();
      case 5: need(4); o += 4; return buf.readInt32LE(o - 4);
      case 6: need(4); o += 4; return buf.readFloatLE(o - 4);
      case 7: need(1); return buf.readUInt8(o++) !== 0;
      case 8: return str();
      case 9: {
        const at = u32(), n = u64();
        if (at !== 8 && at !== 9 && SCALAR[at] === undefined) throw new Error(`${path}: bad array type ${at}`);
        const a = new Array(n);
        for (let i = 0; i < n; i++) a[i] = value(at);
        return a;
      }
      case 10: return u64();
      case 11: need(8); o += 8; return Number(buf.readBigInt64LE(o - 8));
      case 12: need(8); o += 8; return buf.readDoubleLE(o - 8);
      default: throw new Error(`${path}: bad value type ${t}`);
    }
  };
  if (u32() !== 0x46554747) throw new Error(`${path}: not a GGUF file`);
  const version = u32();
  if (version !== 3) throw new Error(`${path}: GGUF version ${version}, expected 3`);
  u64(); // tensor count
  const nkv = u64();
  const kv = new Map();
  for (let i = 0; i < nkv; i++) {
    const k = str();
    kv.set(k, value(u32()));
  }
  return kv;
}
