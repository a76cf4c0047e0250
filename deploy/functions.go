package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

// Function limits and defaults.
const (
	DefaultMemory  = 128 << 20
	MinMemory      = 1 << 20
	MaxMemory      = 4 << 30
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 15 * time.Minute
	MaxCodeBytes   = 64 << 20
	// Latest is the qualifier of a function's mutable, unpublished config.
	Latest = "$LATEST"
)

// FunctionConfig is one deployable configuration of a function: the code
// (by content hash) and how to run it. $LATEST holds one; each published
// version freezes a copy.
type FunctionConfig struct {
	Runtime  string            `json:"runtime"` // "wasm" or "exec"
	CodeHash string            `json:"code_sha256"`
	CodeSize int64             `json:"code_size"`
	Memory   int64             `json:"memory"` // bytes
	Timeout  Duration          `json:"timeout"`
	Env      map[string]string `json:"env,omitempty"`
}

// Version is a published, immutable function version.
type Version struct {
	Version   int            `json:"version"`
	Config    FunctionConfig `json:"config"`
	Published time.Time      `json:"published"`
}

// Function is a named function: its mutable $LATEST, its published versions
// (1, 2, 3, ...) and its aliases (name → version).
type Function struct {
	Name     string         `json:"name"`
	Latest   FunctionConfig `json:"latest"`
	Versions []Version      `json:"versions"`
	Aliases  map[string]int `json:"aliases"`
	Updated  time.Time      `json:"updated"`
}

// CodeKey is where code with the given sha256 is stored (content-addressed:
// the same code deployed twice is stored once and never changes).
func CodeKey(hash string) string { return "_sluice/code/" + hash }

var aliasRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

func (c *FunctionConfig) normalize() error {
	var errs []error
	if c.Runtime != "wasm" && c.Runtime != "exec" {
		errs = append(errs, fmt.Errorf("runtime must be wasm or exec, got %q", c.Runtime))
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.Memory < MinMemory || c.Memory > MaxMemory {
		errs = append(errs, fmt.Errorf("memory must be between 1MiB and 4GiB, got %d bytes", c.Memory))
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.Timeout < Duration(time.Millisecond) || c.Timeout > Duration(MaxTimeout) {
		errs = append(errs, fmt.Errorf("timeout must be between 1ms and 15m, got %s", time.Duration(c.Timeout)))
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("env name %q must be non-empty without = or NUL", k))
		}
	}
	return errors.Join(errs...)
}

// Resolve returns the config a qualifier names: "" or "$LATEST", a version
// number, or an alias. The second result is the resolved version label
// ("$LATEST" or the number) for logs and status.
func (f *Function) Resolve(qualifier string) (FunctionConfig, string, error) {
	if qualifier == "" || qualifier == Latest {
		return f.Latest, Latest, nil
	}
	n, err := strconv.Atoi(qualifier)
	if err != nil {
		v, ok := f.Aliases[qualifier]
		if !ok {
			return FunctionConfig{}, "", fmt.Errorf("function %q has no alias %q (aliases: %v)", f.Name, qualifier, slicesSortedKeys(f.Aliases))
		}
		n = v
	}
	if n < 1 || n > len(f.Versions) {
		return FunctionConfig{}, "", fmt.Errorf("function %q has no version %d (published: 1..%d)", f.Name, n, len(f.Versions))
	}
	return f.Versions[n-1].Config, strconv.Itoa(n), nil
}

func slicesSortedKeys(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }

// SplitQualifier splits "name:qualifier".
func SplitQualifier(ref string) (name, qualifier string) {
	name, qualifier, _ = strings.Cut(ref, ":")
	return name, qualifier
}

// DeployFunction stores code content-addressed and sets the function's
// $LATEST (creating the function if new).
func (r *Registry) DeployFunction(ctx context.Context, name string, cfg FunctionConfig, code []byte) (Function, error) {
	var errs []error
	if !schemas.ValidName(name) {
		errs = append(errs, fmt.Errorf("function name %q must be letters, digits and _ (starting with a letter or _)", name))
	}
	if len(code) == 0 {
		errs = append(errs, errors.New("code is empty"))
	}
	if len(code) > MaxCodeBytes {
		errs = append(errs, fmt.Errorf("code is %d bytes, over the %d-byte limit", len(code), MaxCodeBytes))
	}
	if err := cfg.normalize(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Runtime == "exec" && !r.AllowExec {
		errs = append(errs, errors.New("the exec runtime runs any program on the server's machine and is off: start the server with --allow-exec to deploy exec functions (wasm functions are sandboxed and always allowed)"))
	}
	if cfg.Runtime == "exec" && len(code) > 0 && !bytes.HasPrefix(code, []byte("#!")) && !bytes.HasPrefix(code, []byte("\x7fELF")) {
		errs = append(errs, errors.New("exec code must be a script starting with a #! line (like #!/usr/bin/env python3) or an ELF executable"))
	}
	if cfg.Runtime == "wasm" && len(code) > 0 && r.CheckWasm != nil {
		if err := r.CheckWasm(code); err != nil {
			errs = append(errs, fmt.Errorf("code is not a module sluice can run: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Function{}, fmt.Errorf("%w function: %w", ErrInvalid, err)
	}
	sum := sha256.Sum256(code)
	cfg.CodeHash, cfg.CodeSize = hex.EncodeToString(sum[:]), int64(len(code))
	if _, err := r.bucket.Stat(ctx, CodeKey(cfg.CodeHash)); objstore.IsNotFound(err) {
		if err := r.bucket.Put(ctx, CodeKey(cfg.CodeHash), code); err != nil {
			return Function{}, fmt.Errorf("cannot store code of function %q: %w", name, err)
		}
	} else if err != nil {
		return Function{}, fmt.Errorf("cannot check code of function %q: %w", name, err)
	}
	return r.updateFunction(ctx, name, true, func(f *Function) error {
		f.Latest = cfg
		return nil
	})
}

// PublishFunction freezes $LATEST into the next version. Publishing when
// $LATEST equals the newest version returns that version (as Lambda does).
func (r *Registry) PublishFunction(ctx context.Context, name string) (Version, error) {
	var v Version
	_, err := r.updateFunction(ctx, name, false, func(f *Function) error {
		if n := len(f.Versions); n > 0 && sameConfig(f.Versions[n-1].Config, f.Latest) {
			v = f.Versions[n-1]
			return nil
		}
		v = Version{Version: len(f.Versions) + 1, Config: f.Latest, Published: time.Now().UTC()}
		f.Versions = append(f.Versions, v)
		return nil
	})
	return v, err
}

func sameConfig(a, b FunctionConfig) bool {
	return a.Runtime == b.Runtime && a.CodeHash == b.CodeHash && a.Memory == b.Memory &&
		a.Timeout == b.Timeout && maps.Equal(a.Env, b.Env)
}

// SetAlias points alias at a published version.
func (r *Registry) SetAlias(ctx context.Context, name, alias string, version int) (Function, error) {
	if !aliasRe.MatchString(alias) {
		return Function{}, fmt.Errorf("%w alias %q: must start with a letter, then letters, digits, _ or -", ErrInvalid, alias)
	}
	return r.updateFunction(ctx, name, false, func(f *Function) error {
		if version < 1 || version > len(f.Versions) {
			return fmt.Errorf("%w alias: function %q has no version %d (publish first; published: %d)", ErrInvalid, name, version, len(f.Versions))
		}
		f.Aliases[alias] = version
		return nil
	})
}

// updateFunction applies change to the named function (a new one if create
// and it does not exist) and saves it.
func (r *Registry) updateFunction(ctx context.Context, name string, create bool, change func(*Function) error) (Function, error) {
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	return modifyObject(ctx, r, "functions", &r.functions, name, create, func(f *Function) error {
		if f.Name == "" {
			f.Name = name
		}
		if f.Aliases == nil {
			f.Aliases = map[string]int{}
		}
		if err := change(f); err != nil {
			return err
		}
		f.Updated = time.Now().UTC()
		return nil
	})
}

func (r *Registry) Function(name string) (Function, bool) { return get(r, &r.functions, name) }
func (r *Registry) Functions() []Function                 { return list(r, &r.functions) }

// Code reads a function's code by hash.
func (r *Registry) Code(ctx context.Context, hash string) ([]byte, error) {
	code, err := r.bucket.Get(ctx, CodeKey(hash))
	if err != nil {
		return nil, fmt.Errorf("cannot read function code %s: %w", hash, err)
	}
	if sum := sha256.Sum256(code); hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("BUG: function code %s does not match its hash", hash)
	}
	return code, nil
}
