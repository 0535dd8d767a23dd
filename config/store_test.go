package config

import "testing"

func TestStoreSection(t *testing.T) {
	t.Setenv("GAVEL_TEST_DSN", "postgres://gavel:pw@db.example/gavel")
	t.Setenv("GAVEL_TEST_EMPTY", "")
	tests := []struct {
		name, yaml, wantErr string
		enabled             bool
	}{
		{name: "default is bbolt", yaml: minimal},
		{name: "postgres", yaml: minimal + "store:\n  postgres:\n    dsn_env: GAVEL_TEST_DSN\n", enabled: true},
		{name: "dsn_env missing", yaml: minimal + "store:\n  postgres:\n    reconnect_min: 1s\n",
			wantErr: "config: t.yml:8: store.postgres.dsn_env: required: the environment variable that holds the PostgreSQL connection string"},
		{name: "dsn_env empty", yaml: minimal + "store:\n  postgres:\n    dsn_env: GAVEL_TEST_EMPTY\n",
			wantErr: "config: t.yml:9: store.postgres.dsn_env: environment variable GAVEL_TEST_EMPTY is not set or empty"},
		{name: "unknown key", yaml: minimal + "store:\n  postgres:\n    dsn: postgres://x\n",
			wantErr: `config: t.yml:9: unknown key "store.postgres.dsn" (known keys here: dsn_env, reconnect_max, reconnect_min)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yml", []byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Parse = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Store.Postgres.Enabled() != tt.enabled {
				t.Errorf("Enabled = %v", c.Store.Postgres.Enabled())
			}
			if tt.enabled && c.Store.Postgres.DSN.Reveal() != "postgres://gavel:pw@db.example/gavel" {
				t.Errorf("DSN not read from the environment")
			}
		})
	}
}
