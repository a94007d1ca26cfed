package agent

import "github.com/rumor-sd/rumor/agent/localstate"

// ConfigService is a service defined in a config file, as the config package reads
// it for Config.ConfigServices: the definition as written and its file. The agent
// owns every service it is given so: Reload adds, replaces and removes them.
type ConfigService = localstate.ConfigService

// ValidateEncryptKey checks a gossip encryption key as Config.EncryptKey takes it:
// base64 of 16, 24 or 32 bytes.
func ValidateEncryptKey(key string) error {
	_, err := (&Config{EncryptKey: key}).keys()
	return err
}
