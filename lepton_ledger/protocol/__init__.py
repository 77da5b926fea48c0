"""The one place that parses what parties exchange: canonical JSON with bounds (jsonio), content addressing
of every artifact the chain references (addressing), and a bounded parser/verifier per document. Every
parser raises a named ``ProtocolError`` subclass, never a bare builtin; callers (coordinator, auditor,
forgery prover, CLIs) use these and parse nothing on their own."""
