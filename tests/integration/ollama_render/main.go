// Renders a Modelfile TEMPLATE the way Ollama does for a chat request, for test_modelfile.py.
//
// Ollama (template/template.go) executes a template that uses .Messages with "System" (the system messages'
// text, joined by a blank line) and "Messages" (consecutive messages of one role merged), after putting the
// Modelfile's SYSTEM first when the request has no system message (server/prompt.go). Reads
// {"template", "system", "conversations"} as JSON on stdin, writes the renderings as a JSON list.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Template      string      `json:"template"`
	System        string      `json:"system"`
	Conversations [][]Message `json:"conversations"`
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template))
	var out []string
	for _, conv := range in.Conversations {
		msgs := conv
		hasSystem := false
		for _, m := range msgs {
			if m.Role == "system" {
				hasSystem = true
			}
		}
		if in.System != "" && !hasSystem {
			msgs = append([]Message{{Role: "system", Content: in.System}}, msgs...)
		}
		system, collated := collate(msgs)
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]any{"System": system, "Messages": collated}); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
