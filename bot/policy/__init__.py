"""Policy evaluation: the Rego engine, checkov, risk, verdict assembly, attestation and renderers."""
