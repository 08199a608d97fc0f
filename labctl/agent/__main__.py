# -*- coding: utf-8 -*-
"""``python -m labctl.agent ...`` (a checkout); the shipped zip has its own __main__."""

from __future__ import absolute_import, division, print_function

import sys

from .cli import main

sys.exit(main())
