#!/bin/sh
set -eu
echo "hello: world"
	indented
