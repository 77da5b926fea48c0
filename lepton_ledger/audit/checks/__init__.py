"""The audit's checks, one module per concern: ``artifacts`` (cids_resolve, batch_document, envelope_decrypts,
manifest_signature), ``privacy`` (epsilon_recomputed, epsilon_within_cap), ``rules`` (rules_as_signed),
``training`` (rejections_recheck, aggregate_recomputed), ``rewards`` (scores_and_payouts), ``books``
(vault_conserves, bonds_conserve), ``history`` (event_history). Each returns
:class:`~lepton_ledger.audit.model.CheckResult` lists; the runner orders them."""
