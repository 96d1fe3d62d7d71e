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

// config is the saved connection settings (~/.eascmd/config.json). The oss_* fields are for
// `eascmd upload`; files written before they existed still load.
type config struct {
	Endpoint string `json:"endpoint"`
	Token    string `json:"token"`

	OSSEndpoint        string `json:"oss_endpoint,omitempty"`
	OSSBucket          string `json:"oss_bucket,omitempty"`
	OSSAccessKeyID     string `json:"oss_access_key_id,omitempty"`
	OSSAccessKeySecret string `json:"oss_access_key_secret,omitempty"`
	// OSSAddressing is auto (default), path or virtual; see `easd --help`.
	OSSAddressing string `json:"oss_addressing,omitempty"`
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
		return cfg, fmt.Errorf("config file %s: %w (expected {\"endpoint\": \"…\", \"token\": \"…\"} and optionally oss_endpoint, oss_bucket, oss_access_key_id, oss_access_key_secret, oss_addressing)", path, err)
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
	ossEndpoint := fs.String("oss-endpoint", "", "object storage `endpoint` for upload, e.g. oss-cn-hangzhou.aliyuncs.com or http://127.0.0.1:9000")
	ossBucket := fs.String("oss-bucket", "", "default `bucket` for upload")
	ossID := fs.String("oss-access-key-id", "", "object storage access key `id`")
	ossSecret := fs.String("oss-access-key-secret", "", "object storage access key `secret` (or set OSS_ACCESS_KEY_SECRET instead of saving it)")
	ossAddressing := fs.String("oss-addressing", "", "object storage request `style`: auto, path or virtual")
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
	if *endpoint == "" && *token == "" && *ossEndpoint == "" && *ossBucket == "" && *ossID == "" && *ossSecret == "" && *ossAddressing == "" {
		mask := func(s string) string {
			if s != "" {
				return "****"
			}
			return ""
		}
		fmt.Fprintf(c.opts.Stdout, "Config file: %s\nEndpoint: %s\nToken: %s\n", c.configPath, cfg.Endpoint, mask(cfg.Token))
		if cfg.OSSEndpoint != "" || cfg.OSSBucket != "" || cfg.OSSAccessKeyID != "" {
			fmt.Fprintf(c.opts.Stdout, "OSS Endpoint: %s\nOSS Bucket: %s\nOSS Access Key ID: %s\nOSS Access Key Secret: %s\n",
				cfg.OSSEndpoint, cfg.OSSBucket, cfg.OSSAccessKeyID, mask(cfg.OSSAccessKeySecret))
		}
		return nil
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{{&cfg.Endpoint, *endpoint}, {&cfg.Token, *token}, {&cfg.OSSEndpoint, *ossEndpoint}, {&cfg.OSSBucket, *ossBucket},
		{&cfg.OSSAccessKeyID, *ossID}, {&cfg.OSSAccessKeySecret, *ossSecret}, {&cfg.OSSAddressing, *ossAddressing}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if err := saveConfig(c.configPath, cfg); err != nil {
		return err
	}
	fmt.Fprintf(c.opts.Stdout, "[OK] Configuration saved to %s\n", c.configPath)
	return nil
}
