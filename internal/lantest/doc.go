// Package lantest runs real `rumor agent` processes with mDNS on, and real Avahi
// daemons, on hosts that are network namespaces on one bridge (internal/testnet), and
// checks issue 19's LAN behaviour end to end: zero-config join, pools that must never
// merge, announcements seen by avahi-browse, Avahi's services imported into the
// catalog, conflict renaming, container bridges never used, hostile packets
// harmless. Its benchmarks measure the README's mDNS table.
//
// Every mDNS packet stays inside the testbed's namespaces: agents run only there,
// Avahi runs there with a private D-Bus and a private mount namespace (the recipe in
// ../shared/recipes/avahi-ns.sh), and the test binary calls testkit.GuardMDNS so that
// nothing it starts can run mDNS in the root namespace.
//
// It needs root, iproute2, nftables, avahi-daemon, avahi-utils and dbus-daemon; it
// skips without them, except in CI (CI=true), where it fails.
package lantest
