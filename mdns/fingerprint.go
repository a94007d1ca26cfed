package mdns

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint is the cluster fingerprint an agent announces in its _rumor._udp TXT
// record: the first 8 bytes, in hex, of an HMAC-SHA256 of the datacenter under the
// primary gossip key (an empty key without encryption). Agents join only peers with
// the same fingerprint, so pools of other datacenters or keys are never tried. It
// reveals neither the key nor, without the key, anything to test a guess against
// cheaply beyond the HMAC itself.
func Fingerprint(datacenter string, key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rumor-mdns-v1\x00" + datacenter))
	return hex.EncodeToString(m.Sum(nil)[:8])
}
