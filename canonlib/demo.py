"""The demo fleet: recipe-shaped upstream repos, a fleet tree and a canon.toml, built with real git."""

from __future__ import annotations

import json

VERSION_LABEL = "coop-cloud.${STACK_NAME}.version"


def compose_yml(recipe: str, label_version: str, image: str) -> str:
    return f"""\
---
version: "3.8"

services:
  app:
    image: {image}
    networks:
      - proxy
    environment:
      - DOMAIN
      - STACK_NAME
    volumes:
      - data:/var/lib/{recipe}
    deploy:
      restart_policy:
        condition: on-failure
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.${{STACK_NAME}}.rule=Host(`${{DOMAIN}}`)"
        - "{VERSION_LABEL}={label_version}"

volumes:
  data:

networks:
  proxy:
    external: true
"""


def recipe_files(recipe: str, tag: str, *, label_version: str | None = None, app_conf: str = "ok\n",
                 release_note: bool = True, image: str | None = None) -> dict[str, str]:  # fmt: skip
    """The files of a Co-op Cloud recipe released as ``tag``."""
    app = tag.split("+", 1)[1] if "+" in tag else "latest"
    files = {
        "compose.yml": compose_yml(recipe, label_version or tag, image or f"{recipe}:{app}"),
        ".env.sample": f"TYPE={recipe}\nDOMAIN={recipe}.example.com\n#LETS_ENCRYPT_ENV=production\n",
        "abra.sh": "export APP_CONF_VERSION=v1\n",
        "README.md": f"# {recipe}\n\nA Co-op Cloud recipe (demo).\n",
        "app.conf": app_conf,
        "meta.json": json.dumps({"recipe": recipe, "version": tag}) + "\n",
    }
    if release_note:
        files[f"release/{tag}"] = f"{recipe} {tag}: see upstream changelog.\n"
    return files
