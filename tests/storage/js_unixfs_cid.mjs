// The CIDs the official JavaScript UnixFS importer (npm ipfs-unixfs-importer) gives files, configured as
// kubo's `ipfs add` (boxo importer/balanced): an independent reference for tests/storage.
//
//   node tests/storage/js_unixfs_cid.mjs v0|v1 FILE...   -> one CID per line, in argument order
//
// v0 = `ipfs add` (CIDv0, dag-pb leaves of UnixFS type File); v1 = `ipfs add --cid-version=1` (raw leaves,
// CIDv1 base32). Every option kubo's result depends on is set explicitly rather than left to the package's
// defaults (which changed across majors: the default CID version is 1 and the default leaf type was 'raw').
import { createReadStream } from 'node:fs'
import { BlackHoleBlockstore } from 'blockstore-core'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const MODES = {
  v0: { cidVersion: 0, rawLeaves: false },
  v1: { cidVersion: 1, rawLeaves: true }
}

const [mode, ...paths] = process.argv.slice(2)
if (!(mode in MODES) || paths.length === 0) {
  console.error('usage: node js_unixfs_cid.mjs v0|v1 FILE...')
  process.exit(2)
}

const options = {
  ...MODES[mode],
  // kubo's default splitter "size-262144": fixed 256 KiB chunks, the last one short.
  chunker: fixedSize({ chunkSize: 262144 }),
  // boxo importer/balanced with helpers.DefaultLinksPerBlock = 174 links per node.
  layout: balanced({ maxChildrenPerNode: 174 }),
  // boxo NewLeafDataNode(ft.TFile): dag-pb leaves carry UnixFS type File (ignored with raw leaves).
  leafType: 'file',
  // boxo balanced.Layout: a file of one chunk is that leaf itself (raw block in v1), no parent above it.
  reduceSingleLeafToSelf: true,
  // A bare file: no directory around it, no mtime/mode metadata (which would change the root).
  wrapWithDirectory: false
}

const blockstore = new BlackHoleBlockstore() // only the CIDs are wanted
for (const path of paths) {
  let root
  for await (const entry of importer([{ content: createReadStream(path) }], blockstore, options)) {
    root = entry
  }
  if (root == null) {
    throw new Error(`nothing imported from ${path}`)
  }
  process.stdout.write(`${root.cid.toString()}\n`)
}
