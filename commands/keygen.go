package commands

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/plan"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:      "keygen",
		Usage:     "write an Ed25519 key pair for signing tasks",
		ArgsUsage: "PATH",
		Description: "Writes PATH (the private key, mode 0600, for submitters: --signing-key) and PATH.pub\n" +
			"(the public key, for workers: --verify-key). Workers hold public keys only, so a leaked\n" +
			"worker credential cannot forge tasks. To rotate, give workers both public keys, move\n" +
			"submitters to the new private key, then drop the old public key. An existing file is\n" +
			"never overwritten.\n\n" +
			"   taskiq-go keygen ~/.config/taskiq-go/signing\n" +
			"   taskiq-go submit --signing-key ~/.config/taskiq-go/signing -- echo hi\n" +
			"   taskiq-go work --verify-key ~/.config/taskiq-go/signing.pub",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the key id and file names as JSON"}},
		Action: func(cliContext *cli.Context) error {
			if cliContext.NArg() != 1 {
				return usagef("keygen needs exactly one PATH for the private key (the public key goes to PATH.pub)")
			}
			path := cliContext.Args().First()
			id, err := writeKeyPair(path)
			if err != nil {
				return err
			}
			out := cliContext.App.Writer
			if cliContext.Bool("json") {
				return writeJSON(out, map[string]string{"key_id": id, "private_key": path, "public_key": path + ".pub"})
			}
			_, err = fmt.Fprintf(out, "%s %s %s.pub\n", id, path, path)
			return err
		},
	}
}

// writeKeyPair writes a new key pair to path and path.pub, refusing to
// replace either, and returns the key id.
func writeKeyPair(path string) (string, error) {
	privPEM, pubPEM, err := plan.GenerateKeyPair(rand.Reader)
	if err != nil {
		return "", err
	}
	k, err := plan.ParseSigningKey(privPEM)
	if err != nil {
		return "", err
	}
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return "", usagef("%s exists; keygen never overwrites a key (remove it or choose another path)", p)
		}
	}
	if err := writeNew(path, privPEM, 0o600); err != nil {
		return "", err
	}
	if err := writeNew(path+".pub", pubPEM, 0o644); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return k.ID(), nil
}

// writeNew creates a file that must not exist yet, with its final mode from
// the start, so a private key is never readable by others even briefly.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return usagef("%s exists; keygen never overwrites a key", path)
		}
		return &inputError{fmt.Errorf("write key: %w", err)}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return &inputError{fmt.Errorf("write key %s: %w", path, err)}
	}
	return f.Close()
}
