package schema

import "github.com/jackc/pgx/v5"

func stdlibConfig(url string) (*pgx.ConnConfig, error) {
	return pgx.ParseConfig(url)
}
