package plugin

import (
	"errors"
	"fmt"
	"strings"
)

// Split splits a command line into words the way a POSIX shell does, without expansions:
// words are separated by unquoted blanks; 'single quotes' keep everything literally;
// "double quotes" keep everything but \" \\ \$ \` and backslash-newline; an unquoted backslash
// keeps the next character. Unterminated quotes and a trailing backslash are errors.
func Split(command string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		runes   = []rune(command)
		escaped = func(i int) (rune, error) {
			if i+1 >= len(runes) {
				return 0, errors.New("command ends with a backslash")
			}
			return runes[i+1], nil
		}
	)
	for i := 0; i < len(runes); i++ {
		c := runes[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			n, err := escaped(i)
			if err != nil {
				return nil, err
			}
			i++
			inWord = true
			if n != '\n' { // backslash-newline is a line continuation
				cur.WriteRune(n)
			}
		case c == '\'':
			end := indexRune(runes, i+1, '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at column %d", i+1)
			}
			cur.WriteString(string(runes[i+1 : end]))
			i = end
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(runes) && runes[j] != '"'; j++ {
				if runes[j] == '\\' && j+1 < len(runes) && strings.ContainsRune("\"\\$`\n", runes[j+1]) {
					if runes[j+1] != '\n' {
						cur.WriteRune(runes[j+1])
					}
					j++
					continue
				}
				cur.WriteRune(runes[j])
			}
			if j >= len(runes) {
				return nil, fmt.Errorf("unterminated double quote at column %d", i+1)
			}
			i = j
			inWord = true
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("command is empty")
	}
	return words, nil
}

func indexRune(runes []rune, from int, r rune) int {
	for i := from; i < len(runes); i++ {
		if runes[i] == r {
			return i
		}
	}
	return -1
}
