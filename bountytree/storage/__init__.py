"""Content-addressed storage: the store interface and its verified reader (`store`), the embedded
store and its pack files (`embedded`, `packs`), UnixFS blocks and CIDs (`unixfs`, `cid`), the
client of an IPFS node's RPC API (`kubo`), the local IPFS daemon (`daemon`), and which store a
`--store` value names (`connect`). Below the models; imports no other part of the core."""
