"""From a mergekit-moe recipe to cards: merge each gate mode, evaluate, compare, and check the routing
against the experts' prompts. `evalsuite merge RECIPE.yml`; mergekit comes with `evalsuite[merge]`."""
