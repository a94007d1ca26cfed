// Package config reads rumor's config files: the agent's settings and service
// definitions in Consul's schema, as JSON or HCL (Consul's config file formats), from
// files and config directories. It parses and validates, reporting every problem
// with its file, field and reason; it never starts anything or touches the network.
//
// A file may hold agent keys (node_name, datacenter, data_dir, bind_addr,
// advertise_addr, client_addr, addresses.http, ports.http, ports.serf_lan,
// retry_join, start_join, encrypt, node_meta, enable_script_checks,
// enable_local_script_checks, log_level,
// reconnect_timeout, cert_file and key_file for HTTPS; rumor's own http_token and
// http_token_reads; ui_config.enabled and the older ui) and services ("service": {...} or "services": [...], each
// with "check" and/or "checks"), like a Consul config file. Keys match in
// snake_case (config files) or CamelCase (the HTTP API), as Consul accepts both
// (definition.Field matches them for the HTTP API too); unknown keys are errors.
// Services decode into definition.Service, durations through
// definition.ParseDuration, and are validated by definition.Service.Validate, so a
// file and PUT /v1/agent/service/register accept and refuse the same things.
//
// HCL1 decodes every block into a list of maps; the decoder unwraps one-element
// lists where the schema wants one object (Consul's weak-slice hook) and reports
// a block given twice.
//
// A file is bounded before it is parsed (MaxFileSize, MaxDepth): the HCL and JSON
// parsers recurse once per level, and a deeply nested file would otherwise overflow
// the stack, a fatal error that would kill a running agent on SIGHUP.
//
// Precedence (applied by the CLI): flags > RUMOR_* environment > files > defaults.
// Among files, later files override earlier ones' values; lists append and maps
// merge.
//
// # Testing
//
// Golden files: each testdata/*.json or *.hcl is loaded alone and its outcome (the
// decoded settings and services, or the errors) compared with testdata/golden/<name>.txt;
// run `go test ./config -update` to rewrite them after a deliberate change.
package config
