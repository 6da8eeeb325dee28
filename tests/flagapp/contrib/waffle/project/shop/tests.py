"""The project's existing waffle tests: they must pass against django-waffle and, unchanged,
against flagapp.contrib.waffle."""

import waffle
from django.test import TestCase
from waffle.testutils import override_flag, override_sample, override_switch


class WhichWaffle(TestCase):
    def test_report_module(self) -> None:
        print("WAFFLE_MODULE", waffle.flag_is_active.__module__)


class CheckoutTests(TestCase):
    def test_checkout__flag_missing__old(self) -> None:
        self.assertEqual(self.client.get("/checkout/").content, b"old checkout")

    @override_flag("new_checkout", active=True)
    def test_checkout__flag_on__new(self) -> None:
        self.assertEqual(self.client.get("/checkout/").content, b"new checkout")

    def test_checkout__flag_off__old(self) -> None:
        with override_flag("new_checkout", active=False):
            self.assertEqual(self.client.get("/checkout/").content, b"old checkout")

    def test_beta__decorator(self) -> None:
        self.assertEqual(self.client.get("/beta/").status_code, 404)
        with override_flag("beta_page", active=True):
            self.assertEqual(self.client.get("/beta/").content, b"beta")

    def test_home__negated_switch(self) -> None:
        self.assertEqual(self.client.get("/").content, b"home")
        with override_switch("maintenance", active=True):
            self.assertEqual(self.client.get("/").status_code, 404)
        with override_switch("dark_mode", active=True):
            self.assertEqual(self.client.get("/").content, b"home (dark)")

    def test_reports__mixin(self) -> None:
        self.assertEqual(self.client.get("/reports/").status_code, 404)
        with override_flag("reports", active=True):
            self.assertEqual(self.client.get("/reports/").status_code, 200)

    def test_survey__sample_mixin(self) -> None:
        with override_sample("survey", active=True):
            self.assertEqual(self.client.get("/survey/").content, b"survey")
        with override_sample("survey", active=False):
            self.assertEqual(self.client.get("/survey/").status_code, 404)

    def test_page__template_tags(self) -> None:
        with override_flag("new_checkout", active=True), override_sample("survey", active=True):
            self.assertEqual(self.client.get("/page/").content.strip(), b"NEW|UP|SURVEY")
        self.assertEqual(self.client.get("/page/").content.strip(), b"OLD|UP|NOSURVEY")


@override_switch("maintenance", active=True)
class MaintenanceTests(TestCase):
    def test_home__class_decorated__404(self) -> None:
        self.assertEqual(self.client.get("/").status_code, 404)

    def test_page__class_decorated__maint(self) -> None:
        self.assertIn(b"|MAINT|", self.client.get("/page/").content)
