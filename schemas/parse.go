package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseSchema reads a schema file, YAML or JSON, strictly: an unknown or
// repeated key, a value of the wrong type or a second document is an error
// (with its line number), and the schema must then Validate.
//
// JSON text (starting with '{') is read by encoding/json, YAML by
// go.yaml.in/yaml/v3. YAML 1.2 is nearly a superset of JSON, but not for
// JSON indented with tabs, and encoding/json's behaviour on JSON is the one
// the API already has; its errors carry a byte offset, turned into a line
// here. In YAML, quote a type that holds ": " (a struct with spaces), or
// YAML reads it as a mapping: type: "struct<a: int32>".
func ParseSchema(data []byte) (*Schema, error) {
	var s Schema
	var err error
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		err = parseJSON(data, &s)
	} else {
		err = parseYAML(data, &s)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func parseJSON(data []byte, s *Schema) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return fmt.Errorf("line %d: %w", lineAt(data, errorOffset(err, dec)), err)
	}
	if dec.More() {
		return fmt.Errorf("line %d: unexpected data after the schema object", lineAt(data, dec.InputOffset()))
	}
	return checkDuplicateKeys(data)
}

// errorOffset is where a JSON error happened: the offset the error carries,
// or else how far the decoder read.
func errorOffset(err error, dec *json.Decoder) int64 {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return syn.Offset
	case errors.As(err, &typ):
		return typ.Offset
	}
	return dec.InputOffset()
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// checkDuplicateKeys refuses a JSON object with a repeated key, which
// encoding/json would silently resolve to the last one (a schema file with
// two "columns" is a mistake, not an intent). The YAML decoder refuses them
// by itself.
func checkDuplicateKeys(data []byte) error {
	var walk func(v []byte) error
	walk = func(v []byte) error {
		switch v[0] {
		case '{':
			seen := map[string]bool{}
			for q, raw := range members(v) {
				k := string(decodeKey(q))
				if seen[k] {
					// q is a subslice of data: the difference of their
					// capacities is its offset.
					return fmt.Errorf("line %d: key %s is repeated", lineAt(data, int64(cap(data)-cap(q))), q)
				}
				seen[k] = true
				if err := walk(raw); err != nil {
					return err
				}
			}
		case '[':
			for e := range elements(v) {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(bytes.TrimSpace(data))
}

func parseYAML(data []byte, s *Schema) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the schema file is empty")
		}
		return yamlError(err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("the schema file holds more than one YAML document")
	}
	return nil
}

// yamlError reformats yaml.v3's errors, which carry their line numbers, as
// one problem a line without the "yaml: unmarshal errors:" header.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "\n"))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}
