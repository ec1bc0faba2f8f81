"""ovsdb"""
