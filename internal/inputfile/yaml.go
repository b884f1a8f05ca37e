// Package inputfile reads the files mqctl is given (topology YAML, dead
// letter JSONL): it refuses what is not a text file of a sane size, decodes
// YAML strictly and turns every parser error into a problem that names the
// file, line and column, the form every mqctl input error takes.
package inputfile

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
)

// Problem is one thing wrong with an input file, at a position.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
}

// Problems is an error listing every problem found in one pass.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// FromError converts a go-yaml error into a positioned Problem; other
// errors keep their message and get no position.
func FromError(file string, err error) Problem {
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := Problem{File: file, Message: plainTypeError(ye.GetMessage())}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		return p
	}
	return Problem{File: file, Message: err.Error()}
}

var goTypeError = regexp.MustCompile(`^cannot unmarshal (.+) into Go (?:struct field \S+|value) of type (.+)$`)

// plainTypeError rewrites the decoder's "cannot unmarshal []interface {}
// into Go struct field File.Contexts of type string" in the file's words:
// "want a string, not a list".
func plainTypeError(msg string) string {
	m := goTypeError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	return "want " + yamlKind(m[2]) + ", not " + yamlKind(m[1])
}

func yamlKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean (true or false)"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return goType
}

// DecodeStrict decodes data into v, refusing unknown fields and duplicate
// keys, and returns Problems on failure.
func DecodeStrict(file string, data []byte, v any) (err error) {
	defer Recover(file, &err)
	if err := yaml.UnmarshalWithOptions(data, v, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return Problems{FromError(file, err)}
	}
	return nil
}

// Recover turns a panic of the YAML library on malformed input (fuzzing
// found some) into a Problem, so no input file can crash mqctl. Use it as
// `defer inputfile.Recover(file, &err)` around any go-yaml call.
func Recover(file string, err *error) {
	if r := recover(); r != nil {
		*err = Problems{{File: file, Message: fmt.Sprintf("malformed YAML: the parser gave up (%v)", r)}}
	}
}
