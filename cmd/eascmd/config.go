package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// config is the saved connection settings (~/.eascmd/config.json).
type config struct {
	Endpoint string `json:"endpoint"`
	Token    string `json:"token"`
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (config, error) {
	var cfg config
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config file %s: %w (expected {\"endpoint\": \"…\", \"token\": \"…\"})", path, err)
	}
	return cfg, nil
}

// saveConfig writes the config readable by its owner only: it holds the admin token.
func saveConfig(path string, cfg config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	// CreateTemp makes the file 0600, so the token is never readable by others.
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return nil
}

func runConfig(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("config")
	endpoint := fs.String("e", "", "server `endpoint`, e.g. http://127.0.0.1:8080")
	token := fs.String("k", "", "admin `token` (easd writes it to DATA/admin.token)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if c.configPath == "" {
		return errors.New("no config file path: pass --config FILE")
	}
	cfg, err := loadConfig(c.configPath)
	if err != nil {
		return err
	}
	if *endpoint == "" && *token == "" {
		masked := ""
		if cfg.Token != "" {
			masked = "****"
		}
		fmt.Fprintf(c.opts.Stdout, "Config file: %s\nEndpoint: %s\nToken: %s\n", c.configPath, cfg.Endpoint, masked)
		return nil
	}
	if *endpoint != "" {
		cfg.Endpoint = *endpoint
	}
	if *token != "" {
		cfg.Token = *token
	}
	if err := saveConfig(c.configPath, cfg); err != nil {
		return err
	}
	fmt.Fprintf(c.opts.Stdout, "[OK] Configuration saved to %s\n", c.configPath)
	return nil
}
