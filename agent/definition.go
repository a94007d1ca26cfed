package agent

import "github.com/rumor-sd/rumor/definition"

// ConfigService is a service defined in a config file, as the config package reads
// it: the definition as written (the agent normalizes and validates it) and the file,
// for messages and logs. The agent owns every service it is given through
// Config.ConfigServices: Reload adds, replaces and removes them.
type ConfigService struct {
	Service definition.Service
	File    string
}

// ValidateEncryptKey checks a gossip encryption key as Config.EncryptKey takes it:
// base64 of 16, 24 or 32 bytes.
func ValidateEncryptKey(key string) error {
	_, err := (&Config{EncryptKey: key}).keys()
	return err
}
