"""(placeholder docstring replaced below)"""
