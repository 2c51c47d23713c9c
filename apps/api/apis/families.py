"""Model families and their pruned variants (a shared catalogue: every researcher sees all)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import ResearcherApi, error_responses
from apps.api.selectors import family_get, family_list


class VariantOutput(serializers.Serializer):
    label = serializers.CharField()
    cpr_target = serializers.FloatField(help_text="Target compression ratio.")
    cpr_measured = serializers.FloatField(help_text="Measured over the pruned scope.")
    conv_sparsity = serializers.FloatField()
    test_accuracy = serializers.FloatField(allow_null=True)


class FamilyOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    dataset = serializers.CharField()
    architecture = serializers.CharField()
    prune_method = serializers.CharField()
    schedule = serializers.CharField()
    class_names = serializers.ListField(child=serializers.CharField())
    variants = VariantOutput(many=True, source="variants.all")


class FamilyListApi(ResearcherApi):
    @extend_schema(
        operation_id="families_list",
        summary="Model families with their variants",
        responses={200: FamilyOutput(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(FamilyOutput(family_list(), many=True).data)


class FamilyDetailApi(ResearcherApi):
    @extend_schema(
        operation_id="families_detail",
        summary="One model family with its variants",
        responses={200: FamilyOutput, **error_responses(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(FamilyOutput(family_get(slug=slug)).data)
