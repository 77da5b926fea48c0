"""lepton-ledger."""
