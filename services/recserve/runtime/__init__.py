"""Shared service runtime: config, logging, metrics, server bootstrap, health, shutdown."""
