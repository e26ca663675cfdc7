package plan

import (
	"fmt"
	"strings"
)

// SecretSchemes are the places a secret reference may point to (see the
// secrets package).
var SecretSchemes = []string{"env", "ssm", "secretsmanager"}

// ParseSecretRef splits a reference SCHEME:NAME and checks its form; the
// value is resolved by the worker when the task starts.
func ParseSecretRef(ref string) (scheme, name string, err error) {
	scheme, name, ok := strings.Cut(ref, ":")
	if !ok || name == "" {
		return "", "", fmt.Errorf("is not SCHEME:NAME (env:VAR, ssm:/path, secretsmanager:ID)")
	}
	for _, s := range SecretSchemes {
		if s == scheme {
			if strings.ContainsAny(name, "\x00\n") {
				return "", "", fmt.Errorf("holds a control character")
			}
			return scheme, name, nil
		}
	}
	return "", "", fmt.Errorf("has unknown scheme %q (want env:, ssm: or secretsmanager:)", scheme)
}
