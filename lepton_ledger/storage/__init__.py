"""Content-addressed storage that speaks IPFS: kubo-identical CIDs (UnixFS importer), a local block store
(the embedded default), CAR v1 files, and a Kubo RPC backend. Every backend implements `Store`."""
